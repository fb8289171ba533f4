"""Test helpers for users and adapters: the event store contract suite."""

from actorsrc.testing.store_contract import EventStoreContract, StoreFactory, new_event

__all__ = ["EventStoreContract", "StoreFactory", "new_event"]
