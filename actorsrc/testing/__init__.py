"""Test helpers for users and adapters: the event store contract suite, and a store for fault injection."""

from actorsrc.testing.faults import FaultyStore, InlineFaultyStore
from actorsrc.testing.store_contract import EventStoreContract, StoreFactory, new_event

__all__ = ["EventStoreContract", "FaultyStore", "InlineFaultyStore", "StoreFactory", "new_event"]
