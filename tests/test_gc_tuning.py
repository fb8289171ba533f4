"""The Runtime's own GC tuning: applied while open, restored by the last to exit, never over an
application's own thresholds, and switchable off."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import pytest

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.errors import ConfigurationError
from actorsrc.runtime.gc_tuning import CPYTHON_THRESHOLDS, TUNED_YOUNG_THRESHOLD
from examples.bank import account


@pytest.fixture(autouse=True)
def cpython_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(*CPYTHON_THRESHOLDS)
    yield
    gc.set_threshold(*before)


@pytest.fixture
async def store() -> AsyncIterator[SQLiteEventStore]:
    async with SQLiteEventStore.open(":memory:") as opened:
        yield opened


async def test_a_runtime_tunes_while_open_and_restores_on_exit(store: SQLiteEventStore) -> None:
    async with Runtime(store, [account]) as runtime:
        assert runtime.gc_tuned
        assert gc.get_threshold() == (TUNED_YOUNG_THRESHOLD, 10, 10)
    assert not runtime.gc_tuned
    assert gc.get_threshold() == CPYTHON_THRESHOLDS


async def test_the_last_of_two_runtimes_restores(store: SQLiteEventStore) -> None:
    async with Runtime(store, [account]) as first:
        async with Runtime(store, [account]) as second:
            assert first.gc_tuned
            assert second.gc_tuned
        assert gc.get_threshold()[0] == TUNED_YOUNG_THRESHOLD  # the first is still open
    assert gc.get_threshold() == CPYTHON_THRESHOLDS


async def test_turned_off_it_leaves_the_thresholds_alone(store: SQLiteEventStore) -> None:
    async with Runtime(store, [account], tune_gc=False) as runtime:
        assert not runtime.gc_tuned
        assert gc.get_threshold() == CPYTHON_THRESHOLDS


async def test_an_application_s_own_thresholds_are_kept(store: SQLiteEventStore) -> None:
    gc.set_threshold(5000, 20, 20)
    async with Runtime(store, [account]) as runtime:
        assert not runtime.gc_tuned
        assert gc.get_threshold() == (5000, 20, 20)
    assert gc.get_threshold() == (5000, 20, 20)


async def test_retuned_while_open_the_application_s_choice_survives_the_exit(store: SQLiteEventStore) -> None:
    async with Runtime(store, [account]):
        gc.set_threshold(9000, 10, 10)
    assert gc.get_threshold() == (9000, 10, 10)


async def test_a_bad_flag_is_refused(store: SQLiteEventStore) -> None:
    with pytest.raises(ConfigurationError, match="tune_gc must be True or False, got 'yes'"):
        Runtime(store, [account], tune_gc="yes")  # type: ignore[arg-type]
