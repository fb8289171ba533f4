"""Test helpers for users and adapters: given/when/then for aggregates, projections and process managers,
the event store contract suite, and a store for fault injection."""

from actorsrc.testing.aggregate_testkit import AggregateScenario, Decision, given
from actorsrc.testing.faults import FaultyStore, InlineFaultyStore
from actorsrc.testing.given_streams import StreamEvents, on
from actorsrc.testing.process_testkit import ProcessOutcome, given_process
from actorsrc.testing.projection_testkit import Tables, project, projected
from actorsrc.testing.store_contract import EventStoreContract, StoreFactory, new_event

__all__ = [
    "AggregateScenario",
    "Decision",
    "EventStoreContract",
    "FaultyStore",
    "InlineFaultyStore",
    "ProcessOutcome",
    "StoreFactory",
    "StreamEvents",
    "Tables",
    "given",
    "given_process",
    "new_event",
    "on",
    "project",
    "projected",
]
