"""The contract every `EventStore` adapter passes. Subclass it in a test module:

    class TestMyStoreContract(EventStoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path: Path) -> StoreFactory:
            return lambda: MyStore.open(tmp_path / "events.db")

`store_factory()` must open a new store object on the *same* database each time it is called, so
the suite can check durability across reopen and conflicts between two store instances (a store whose
every open is a new database, like an in-memory one, sets ``reopens_same_database = False``).

The tests of undecodable rows need `corrupt_row`, which writes behind the store's back; an adapter's
contract class implements it, or those tests are skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from actorsrc.errors import (
    ConcurrencyError,
    EventDecodeError,
    FencedAppendError,
    InvalidStreamIdError,
    LimitExceededError,
    StoreClosedError,
)
from actorsrc.hashing import SLICES, slice_of
from actorsrc.records import AppendResult, Metadata, NewEvent, RecordedEvent
from actorsrc.store.base import ANY, NO_STREAM, AppendSubmitter, EventStore, FencingStore
from actorsrc.store.limits import DEFAULT_LIMITS, StoreLimits

StoreFactory = Callable[[], AbstractAsyncContextManager[EventStore]]


def new_event(payload: str = "x", type_name: str = "SomethingHappened", **metadata: str) -> NewEvent:
    return NewEvent(type_name, f'{{"p":"{payload}"}}'.encode(), Metadata(uuid.uuid4().hex, **metadata))


def _payloads(records: list[RecordedEvent]) -> list[bytes]:
    return [record.data for record in records]


async def _read_everything(store: EventStore, page: int = 7) -> list[RecordedEvent]:
    records: list[RecordedEvent] = []
    while chunk := await store.read_all(records[-1].position if records else 0, page):
        records.extend(chunk)
    return records


class EventStoreContract:
    """Behaviour every event store must have. A subclass provides the `store_factory` fixture."""

    reopens_same_database = True
    """False for a store whose every open is a new database: the reopen and two-instance tests skip."""

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[EventStore]:
        async with store_factory() as store:
            yield store

    async def corrupt_row(self, store: EventStore, position: int, column: str, value: bytes | int) -> None:
        """Set `column` ("metadata" or "recorded_at") of the stored event at global `position` to `value`,
        behind the store's back (``UPDATE events SET <column> = value WHERE position = ...``), as a buggy
        program or a damaged disk might. Adapters' contract classes implement it."""
        pytest.skip(f"{type(self).__name__} does not implement corrupt_row(), which the undecodable-row tests need")

    def _require_shared_database(self) -> None:
        if not self.reopens_same_database:
            pytest.skip(f"each open of {type(self).__name__}'s store is a new database")

    # -- append and read ------------------------------------------------------------------------

    async def test_empty_store(self, store: EventStore) -> None:
        assert await store.last_position() == 0
        assert await store.read_all() == []
        assert await store.read_stream("nothing-here") == []
        assert await store.stream_version("nothing-here") == 0

    async def test_append_to_new_stream_numbers_versions_and_positions(self, store: EventStore) -> None:
        result = await store.append("order-1", [new_event("a"), new_event("b"), new_event("c")], NO_STREAM)
        assert (result.first_version, result.last_version) == (1, 3)
        assert (result.first_position, result.last_position) == (1, 3)
        records = await store.read_stream("order-1")
        assert [r.version for r in records] == [1, 2, 3]
        assert [r.position for r in records] == [1, 2, 3]
        assert _payloads(records) == [b'{"p":"a"}', b'{"p":"b"}', b'{"p":"c"}']
        assert await store.stream_version("order-1") == 3
        assert await store.last_position() == 3

    async def test_expected_version_zero_means_no_stream(self, store: EventStore) -> None:
        await store.append("s", [new_event()], 0)
        with pytest.raises(ConcurrencyError):
            await store.append("s", [new_event()], 0)

    async def test_appends_continue_from_the_expected_version(self, store: EventStore) -> None:
        await store.append("s", [new_event("1")], NO_STREAM)
        result = await store.append("s", [new_event("2"), new_event("3")], 1)
        assert (result.first_version, result.last_version) == (2, 3)
        assert [r.version for r in await store.read_stream("s")] == [1, 2, 3]

    async def test_wrong_expected_version_raises_and_writes_nothing(self, store: EventStore) -> None:
        await store.append("s", [new_event("1"), new_event("2")], NO_STREAM)
        for wrong in (0, 1, 3, 10, NO_STREAM):
            with pytest.raises(ConcurrencyError) as caught:
                await store.append("s", [new_event("bad")], wrong)
            assert caught.value.stream_id == "s"
            assert caught.value.actual == 2
            assert "'s'" in str(caught.value)
        assert await store.stream_version("s") == 2
        assert await store.last_position() == 2
        assert b'{"p":"bad"}' not in _payloads(await _read_everything(store))

    async def test_any_version_appends_whatever_the_version(self, store: EventStore) -> None:
        await store.append("s", [new_event("1")], ANY)
        await store.append("s", [new_event("2")], ANY)
        assert [r.version for r in await store.read_stream("s")] == [1, 2]

    async def test_read_stream_range(self, store: EventStore) -> None:
        await store.append("s", [new_event(str(i)) for i in range(1, 11)], NO_STREAM)
        assert [r.version for r in await store.read_stream("s", from_version=4)] == list(range(4, 11))
        assert [r.version for r in await store.read_stream("s", 3, 5)] == [3, 4, 5]
        assert await store.read_stream("s", 11) == []
        with pytest.raises(ValueError, match="from_version"):
            await store.read_stream("s", 0)

    async def test_streams_are_independent(self, store: EventStore) -> None:
        await store.append("a", [new_event("a1")], NO_STREAM)
        await store.append("b", [new_event("b1"), new_event("b2")], NO_STREAM)
        await store.append("a", [new_event("a2")], 1)
        assert _payloads(await store.read_stream("a")) == [b'{"p":"a1"}', b'{"p":"a2"}']
        assert [r.version for r in await store.read_stream("b")] == [1, 2]
        assert [(r.stream_id, r.position) for r in await store.read_all()] == [
            ("a", 1),
            ("b", 2),
            ("b", 3),
            ("a", 4),
        ]

    async def test_read_all_pages_cover_the_log_once_in_order(self, store: EventStore) -> None:
        for i in range(20):
            await store.append(f"s-{i % 3}", [new_event(str(i)), new_event(str(i))], ANY)
        records = await _read_everything(store, page=7)
        assert [r.position for r in records] == list(range(1, 41))
        assert len(await store.read_all(after_position=35, limit=100)) == 5
        assert await store.read_all(after_position=40) == []
        with pytest.raises(ValueError, match="limit"):
            await store.read_all(0, 0)
        with pytest.raises(ValueError, match="after_position"):
            await store.read_all(-1)

    async def test_metadata_type_schema_and_time_round_trip(self, store: EventStore) -> None:
        before = datetime.now(UTC) - timedelta(seconds=1)
        event = NewEvent(
            "PaymentCaptured",
            b'{"amount":5}',
            Metadata("evt-1", command_id="cmd-1", causation_id="cause-1", correlation_id="corr-1"),
            schema_version=3,
        )
        await store.append("payment-1", [event], NO_STREAM)
        (record,) = await store.read_stream("payment-1")
        (from_log,) = await store.read_all()
        assert record == from_log
        assert record.type == "PaymentCaptured"
        assert record.schema_version == 3
        assert record.data == b'{"amount":5}'
        assert record.metadata == event.metadata
        assert record.recorded_at.tzinfo is not None
        assert before <= record.recorded_at <= datetime.now(UTC) + timedelta(seconds=1)

    async def test_one_large_append_is_atomic_and_contiguous(self, store: EventStore) -> None:
        await store.append("small", [new_event()], NO_STREAM)
        result = await store.append("big", [new_event(str(i)) for i in range(12_000)], NO_STREAM)
        assert (result.first_position, result.last_position) == (2, 12_001)
        assert len(await store.read_stream("big")) == 12_000

    async def test_command_ids_are_found_per_stream(self, store: EventStore) -> None:
        await store.append("s", [new_event(command_id="c1"), new_event(command_id="c1")], NO_STREAM)
        await store.append("s", [new_event(), new_event(command_id="c2")], 2)
        await store.append("other", [new_event(command_id="c3")], NO_STREAM)
        assert await store.find_commands("s", ["c1", "c2", "c3", "missing"]) == {"c1": (1, 2), "c2": (4, 4)}
        assert await store.find_commands("other", ["c1", "c3"]) == {"c3": (1, 1)}
        assert await store.find_commands("no-such-stream", ["c1"]) == {}
        many = [f"x{i}" for i in range(1200)]  # more ids than one SQL statement may bind
        assert await store.find_commands("s", [*many, "c2"]) == {"c2": (4, 4)}
        with pytest.raises(InvalidStreamIdError):
            await store.find_commands("", ["c1"])

    # -- concurrency and group commit --------------------------------------------------------------

    async def test_concurrent_appends_to_one_stream_admit_exactly_one(self, store: EventStore) -> None:
        await store.append("s", [new_event()], NO_STREAM)
        outcomes: list[str] = []

        async def contender(i: int) -> None:
            try:
                await store.append("s", [new_event(str(i))], 1)
                outcomes.append("ok")
            except ConcurrencyError:
                outcomes.append("conflict")

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(contender, i)
        assert sorted(outcomes) == ["conflict"] * 19 + ["ok"]
        assert await store.stream_version("s") == 2

    async def test_group_commit_checks_each_stream_and_isolates_failures(self, store: EventStore) -> None:
        streams = [f"acct-{i}" for i in range(100)]
        for name in streams[:50]:
            await store.append(name, [new_event("seed")], NO_STREAM)
        failures: list[str] = []

        async def writer(name: str, expected: int) -> None:
            try:
                await store.append(name, [new_event(name), new_event(name)], expected)
            except ConcurrencyError:
                failures.append(name)

        async with anyio.create_task_group() as tg:
            for i, name in enumerate(streams):
                seeded = i < 50
                wrong = i % 10 == 0  # every tenth append carries a stale expectation
                expected = (1 if seeded else 0) + (5 if wrong else 0)
                tg.start_soon(writer, name, expected)
        assert sorted(failures) == sorted(name for i, name in enumerate(streams) if i % 10 == 0)
        records = await _read_everything(store, page=1000)
        assert [r.position for r in records] == list(range(1, len(records) + 1))
        assert len(records) == 50 + 90 * 2
        for i, name in enumerate(streams):
            versions = [r.version for r in await store.read_stream(name)]
            base = 1 if i < 50 else 0
            assert versions == list(range(1, base + 1 + (0 if i % 10 == 0 else 2)))

    async def test_positions_follow_commit_order(self, store: EventStore) -> None:
        last = 0
        for i in range(30):
            result = await store.append(f"s-{i % 4}", [new_event()], ANY)
            assert result.first_position == last + 1
            last = result.last_position

    # -- durability and several store instances ----------------------------------------------------

    async def test_appends_survive_reopen(self, store_factory: StoreFactory) -> None:
        self._require_shared_database()
        async with store_factory() as store:
            await store.append("s", [new_event("1"), new_event("2")], NO_STREAM)
        async with store_factory() as store:
            assert _payloads(await store.read_stream("s")) == [b'{"p":"1"}', b'{"p":"2"}']
            result = await store.append("s", [new_event("3")], 2)
            assert result.first_position == 3

    async def test_two_store_instances_detect_each_others_writes(self, store_factory: StoreFactory) -> None:
        self._require_shared_database()
        async with store_factory() as first, store_factory() as second:
            await first.append("shared", [new_event("1")], NO_STREAM)
            await second.append("other", [new_event("o")], NO_STREAM)
            with pytest.raises(ConcurrencyError):
                await second.append("shared", [new_event("stale")], NO_STREAM)
            await second.append("shared", [new_event("2")], 1)
            with pytest.raises(ConcurrencyError):
                await first.append("shared", [new_event("stale")], 1)
            await first.append("shared", [new_event("3")], 2)
            records = await _read_everything(first)
            assert [r.position for r in records] == [1, 2, 3, 4]
            assert [r.version for r in await second.read_stream("shared")] == [1, 2, 3]

    async def test_closed_store_refuses_work(self, store_factory: StoreFactory) -> None:
        async with store_factory() as store:
            pass
        with pytest.raises(StoreClosedError):
            await store.append("s", [new_event()], NO_STREAM)
        with pytest.raises(StoreClosedError):
            await store.read_all()

    # -- bad input -----------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["", "   ", "x" * 600, 42, None, b"bytes", "nul\x00inside"])
    async def test_bad_stream_ids_are_refused(self, store: EventStore, bad: object) -> None:
        with pytest.raises(InvalidStreamIdError):
            await store.append(bad, [new_event()], NO_STREAM)  # type: ignore[arg-type]
        with pytest.raises(InvalidStreamIdError):
            await store.read_stream(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidStreamIdError):
            await store.stream_version(bad)  # type: ignore[arg-type]
        assert await store.last_position() == 0

    async def test_stream_ids_are_data_not_sql(self, store: EventStore) -> None:
        hostile = ["x'; DROP TABLE events; --", 'quote"d', "ünïcødé-流", "100%_like"]
        for name in hostile:
            await store.append(name, [new_event(name)], NO_STREAM)
        for name in hostile:
            (record,) = await store.read_stream(name)
            assert record.stream_id == name
        assert await store.read_stream("100%") == []
        assert await store.last_position() == len(hostile)

    @pytest.mark.parametrize("bad", [-1, True, "1", 1.0, None])
    async def test_bad_expected_versions_are_refused(self, store: EventStore, bad: object) -> None:
        with pytest.raises(ValueError, match="expected version"):
            await store.append("s", [new_event()], bad)  # type: ignore[arg-type]
        assert await store.last_position() == 0

    async def test_bad_event_lists_are_refused(self, store: EventStore) -> None:
        with pytest.raises(ValueError, match="at least one event"):
            await store.append("s", [], NO_STREAM)
        with pytest.raises(TypeError, match="NewEvent"):
            await store.append("s", [new_event(), {"type": "x"}], NO_STREAM)  # type: ignore[list-item]
        with pytest.raises(TypeError, match="data"):
            await store.append("s", [NewEvent("T", "not bytes", Metadata("e"))], NO_STREAM)  # type: ignore[arg-type]
        assert await store.last_position() == 0

    @pytest.mark.parametrize(
        "field", ["type", "event_id", "command_id", "causation_id", "correlation_id", "command_digest"]
    )
    @pytest.mark.parametrize("bad", ["nul\x00inside", "new\nline", "tab\there", "del\x7f", "c1\x85control", "\x00"])
    async def test_control_characters_in_type_names_and_metadata_ids_are_refused(
        self, store: EventStore, field: str, bad: str
    ) -> None:
        ids = {"event_id": "e-1", field: bad} if field != "type" else {"event_id": "e-1"}
        event = NewEvent(bad if field == "type" else "Happened", b"{}", Metadata(**ids))
        with pytest.raises(ValueError, match="control characters") as caught:
            await store.append("s", [new_event(), event], NO_STREAM)
        assert repr(bad) in str(caught.value)
        assert await store.last_position() == 0

    async def test_printable_unicode_in_type_names_and_ids_is_accepted(self, store: EventStore) -> None:
        event = NewEvent("KontoEröffnet", b"{}", Metadata("é-1", command_id="命令-1", correlation_id="a b"))
        await store.append("s", [event], NO_STREAM)
        (record,) = await store.read_stream("s")
        assert (record.type, record.metadata) == (event.type, event.metadata)

    # -- limits --------------------------------------------------------------------------------

    async def test_an_event_over_the_size_limit_is_refused_before_anything_is_written(self, store: EventStore) -> None:
        limits: StoreLimits = getattr(store, "limits", DEFAULT_LIMITS)
        at_limit = NewEvent("Big", b"x" * limits.max_event_bytes, Metadata("e-1"))
        over = NewEvent("Bigger", b"x" * (limits.max_event_bytes + 1), Metadata("e-2"))
        with pytest.raises(LimitExceededError, match="max_event_bytes") as caught:
            await store.append("s", [new_event(), over], NO_STREAM)
        assert (caught.value.what, caught.value.size, caught.value.limit) == (
            "max_event_bytes",
            limits.max_event_bytes + 1,
            limits.max_event_bytes,
        )
        assert "'s'" in str(caught.value)
        assert "Bigger" in str(caught.value)
        assert await store.last_position() == 0
        await store.append("s", [at_limit], NO_STREAM)
        assert len((await store.read_stream("s"))[0].data) == limits.max_event_bytes

    async def test_an_append_over_the_count_or_size_limit_is_refused(self, store: EventStore) -> None:
        limits: StoreLimits = getattr(store, "limits", DEFAULT_LIMITS)
        one = new_event()
        with pytest.raises(LimitExceededError, match="max_append_events") as by_count:
            await store.append("s", [one] * (limits.max_append_events + 1), NO_STREAM)
        assert (by_count.value.size, by_count.value.limit) == (limits.max_append_events + 1, limits.max_append_events)
        blob = NewEvent("Blob", b"x" * limits.max_event_bytes, Metadata("e-1"))
        count = limits.max_append_bytes // limits.max_event_bytes + 1
        with pytest.raises(LimitExceededError, match="max_append_bytes") as by_size:
            await store.append("s", [blob] * count, NO_STREAM)
        assert by_size.value.size == count * limits.max_event_bytes
        assert await store.last_position() == 0

    # -- rows that do not decode -----------------------------------------------------------------

    async def _log_with_a_bad_row(self, store: EventStore, column: str, value: bytes | int) -> None:
        """Positions 1-5: a-1, b-1, a-2 (made undecodable), b-2, a-3."""
        for name in ("a", "b", "a", "b", "a"):
            await store.append(name, [new_event(name)], ANY)
        await self.corrupt_row(store, 3, column, value)

    @pytest.mark.parametrize(
        ("column", "value", "reason"),
        [("metadata", b"garbage", "metadata"), ("recorded_at", 2**62, "recorded_at")],
    )
    async def test_an_undecodable_row_names_its_stream_version_and_position(
        self, store: EventStore, column: str, value: bytes | int, reason: str
    ) -> None:
        await self._log_with_a_bad_row(store, column, value)
        with pytest.raises(EventDecodeError, match=reason) as caught:
            await store.read_all()
        error = caught.value
        assert (error.stream_id, error.version, error.position, error.type_name) == ("a", 2, 3, "SomethingHappened")
        assert "'a' version 2 at position 3" in str(error)
        with pytest.raises(EventDecodeError, match=reason):
            await store.read_stream("a")
        assert [r.version for r in await store.read_stream("a", 3)] == [3]
        assert len(await store.read_stream("b")) == 2

    async def test_the_rows_around_an_undecodable_one_stay_readable(self, store: EventStore) -> None:
        await self._log_with_a_bad_row(store, "metadata", b"garbage")
        after = 1
        with pytest.raises(EventDecodeError) as caught:
            await store.read_all(after)
        bad = caught.value.position
        assert bad == 3
        # What a subscriber does: read the rows before the bad one, then go on after it.
        before = await store.read_all(after, limit=bad - after - 1)
        assert [r.position for r in before] == [2]
        assert [r.position for r in await store.read_all(bad)] == [4, 5]
        with pytest.raises(EventDecodeError):
            await store.read_all(2, limit=1)

    async def test_a_sliced_read_stops_before_an_undecodable_row_it_does_not_start_with(
        self, store: EventStore
    ) -> None:
        await self._log_with_a_bad_row(store, "metadata", b"garbage")
        of_a, of_b = (slice_of("a"), slice_of("a") + 1), (slice_of("b"), slice_of("b") + 1)
        assert slice_of("a") != slice_of("b")
        # Stream a holds positions 1, 3 (undecodable) and 5; b holds 2 and 4.
        assert [r.position for r in await store.read_all(slices=of_a)] == [1]  # a short batch, ending before it
        with pytest.raises(EventDecodeError) as caught:
            await store.read_all(1, slices=of_a)
        assert (caught.value.stream_id, caught.value.position) == ("a", 3)
        with pytest.raises(EventDecodeError):
            await store.read_all(2, 1, slices=of_a)  # re-reading the row itself
        assert [r.position for r in await store.read_all(0, limit=1, slices=of_a)] == [1]
        assert [r.position for r in await store.read_all(3, slices=of_a)] == [5]
        assert [r.position for r in await store.read_all(slices=of_b)] == [2, 4]
        with pytest.raises(EventDecodeError):
            await store.read_all()  # unsliced reads keep raising for the first undecodable row

    # -- slices --------------------------------------------------------------------------------

    async def test_sliced_reads_return_the_events_of_those_slices_in_position_order(self, store: EventStore) -> None:
        names = [f"s-{i}" for i in range(12)]
        for round_ in range(3):
            for name in names:
                await store.append(name, [new_event(f"{name}.{round_}")], ANY)
        everything = await _read_everything(store, page=100)
        assert len(everything) == 36
        for low, high in [(0, SLICES), (0, 300), (300, 600), (109, 110), (600, SLICES), (1000, SLICES)]:
            wanted = [r for r in everything if low <= slice_of(r.stream_id) < high]
            assert await store.read_all(0, 1000, slices=(low, high)) == wanted
            paged: list[RecordedEvent] = []
            while chunk := await store.read_all(paged[-1].position if paged else 0, 4, slices=(low, high)):
                assert len(chunk) <= 4
                paged.extend(chunk)
            assert paged == wanted
        middle = everything[17].position
        assert (
            await store.read_all(middle, 3, slices=(0, 400))
            == [r for r in everything if r.position > middle and slice_of(r.stream_id) < 400][:3]
        )

    @pytest.mark.parametrize(
        "bad", [(0, 0), (5, 3), (-1, 4), (0, SLICES + 1), (1,), (1, 2, 3), [0, 4], (0.0, 4), (True, 4), "0:4", 4]
    )
    async def test_bad_slices_are_refused(self, store: EventStore, bad: object) -> None:
        await store.append("s", [new_event()], NO_STREAM)
        with pytest.raises(ValueError, match="slices") as caught:
            await store.read_all(0, 10, slices=bad)  # type: ignore[arg-type]
        assert repr(bad) in str(caught.value)

    # -- fencing -------------------------------------------------------------------------------

    def _fencing(self, store: EventStore) -> FencingStore:
        if not isinstance(store, FencingStore):
            pytest.skip(f"{type(store).__name__} keeps no shard fences")
        return store

    async def test_an_append_below_its_shards_fence_is_refused_and_writes_nothing(self, store: EventStore) -> None:
        fencing = self._fencing(store)
        assert await fencing.fences() == {}
        assert await fencing.raise_fence(3, 5) == 5
        with pytest.raises(FencedAppendError) as caught:
            await fencing.append("s", [new_event("zombie")], NO_STREAM, fence=(3, 4))
        error = caught.value
        assert (error.stream_id, error.shard, error.token, error.fence) == ("s", 3, 4, 5)
        assert "'s'" in str(error)
        assert await store.stream_version("s") == 0
        assert await store.last_position() == 0

    async def test_appends_at_or_above_the_fence_or_without_one_are_written(self, store: EventStore) -> None:
        fencing = self._fencing(store)
        await fencing.raise_fence(3, 5)
        await fencing.append("s", [new_event("at")], NO_STREAM, fence=(3, 5))
        await fencing.append("s", [new_event("above")], 1, fence=(3, 6))
        await fencing.append("s", [new_event("unfenced")], 2)  # never checked
        await fencing.append("t", [new_event("no fence row")], NO_STREAM, fence=(4, 0))
        assert _payloads(await store.read_stream("s")) == [b'{"p":"at"}', b'{"p":"above"}', b'{"p":"unfenced"}']
        assert await store.stream_version("t") == 1
        assert await fencing.fences() == {3: 5}  # appends never move a fence

    async def test_a_fence_never_goes_down(self, store: EventStore) -> None:
        fencing = self._fencing(store)
        assert await fencing.raise_fence(1, 10) == 10
        assert await fencing.raise_fence(1, 3) == 10
        assert await fencing.raise_fence(2, 0) == 0
        assert await fencing.raise_fence(1, 11) == 11
        assert await fencing.fences() == {1: 11, 2: 0}
        with pytest.raises(FencedAppendError):
            await fencing.append("s", [new_event()], NO_STREAM, fence=(1, 10))

    async def test_one_fenced_append_of_a_batch_is_refused_and_the_others_written(self, store: EventStore) -> None:
        fencing = self._fencing(store)
        await fencing.raise_fence(1, 2)
        await store.append("c", [new_event("seed")], NO_STREAM)
        if isinstance(store, AppendSubmitter):  # submitted together: they share a group commit
            futures = [
                store.submit_append("a", [new_event("zombie")], NO_STREAM, fence=(1, 1)),
                store.submit_append("b", [new_event("owner")], NO_STREAM, fence=(1, 2)),
                store.submit_append("c", [new_event("stale")], NO_STREAM, fence=(1, 2)),
                store.submit_append("d", [new_event("free")], NO_STREAM),
            ]
        else:
            futures = [
                asyncio.ensure_future(fencing.append("a", [new_event("zombie")], NO_STREAM, fence=(1, 1))),
                asyncio.ensure_future(fencing.append("b", [new_event("owner")], NO_STREAM, fence=(1, 2))),
                asyncio.ensure_future(fencing.append("c", [new_event("stale")], NO_STREAM, fence=(1, 2))),
                asyncio.ensure_future(fencing.append("d", [new_event("free")], NO_STREAM)),
            ]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(outcomes[0], FencedAppendError)
        assert isinstance(outcomes[1], AppendResult)
        assert isinstance(outcomes[2], ConcurrencyError)
        assert isinstance(outcomes[3], AppendResult)
        assert [await store.stream_version(name) for name in "abcd"] == [0, 1, 1, 1]
        assert [r.data for r in await _read_everything(store)] == [b'{"p":"seed"}', b'{"p":"owner"}', b'{"p":"free"}']

    @pytest.mark.parametrize(
        ("shard", "token", "error"),
        [(-1, 0, ValueError), (0, -1, ValueError), ("1", 0, TypeError), (True, 0, TypeError), (0, 1.0, TypeError)],
    )
    async def test_bad_fences_are_refused(
        self, store: EventStore, shard: object, token: object, error: type[Exception]
    ) -> None:
        fencing = self._fencing(store)
        with pytest.raises(error, match=repr(shard) if shard in (-1, "1", True) else repr(token)):
            await fencing.raise_fence(shard, token)  # type: ignore[arg-type]
        with pytest.raises(error):
            await fencing.append("s", [new_event()], NO_STREAM, fence=(shard, token))  # type: ignore[arg-type]
        for bad in [(1,), [1, 2], (1, 2, 3), 7]:
            with pytest.raises(TypeError, match="fence"):
                await fencing.append("s", [new_event()], NO_STREAM, fence=bad)  # type: ignore[arg-type]
        assert await fencing.fences() == {}
        assert await store.last_position() == 0

    async def test_a_fence_survives_reopen(self, store_factory: StoreFactory) -> None:
        self._require_shared_database()
        async with store_factory() as store:
            await self._fencing(store).raise_fence(9, 4)
        async with store_factory() as store:
            fencing = self._fencing(store)
            assert await fencing.fences() == {9: 4}
            with pytest.raises(FencedAppendError):
                await fencing.append("s", [new_event()], NO_STREAM, fence=(9, 3))

    async def test_a_fence_from_another_store_instance_holds(self, store_factory: StoreFactory) -> None:
        self._require_shared_database()
        async with store_factory() as first, store_factory() as second:
            await self._fencing(second).raise_fence(2, 8)
            with pytest.raises(FencedAppendError):
                await self._fencing(first).append("s", [new_event()], NO_STREAM, fence=(2, 7))
            assert await self._fencing(first).fences() == {2: 8}

    async def test_an_append_in_flight_when_the_fence_rises_committed_before_or_is_refused(
        self, store: EventStore
    ) -> None:
        fencing = self._fencing(store)
        seen = {"before": 0, "refused": 0}
        for round_ in range(20):
            stream = f"s-{round_}"
            token = round_ + 1
            if isinstance(store, AppendSubmitter):
                pending = store.submit_append(stream, [new_event()], NO_STREAM, fence=(0, round_))
            else:
                pending = asyncio.ensure_future(fencing.append(stream, [new_event()], NO_STREAM, fence=(0, round_)))
            if round_ % 2:
                await asyncio.sleep(0)  # let the append's batch start on odd rounds
            assert await fencing.raise_fence(0, token) == token
            visible = await store.stream_version(stream)  # what was written before the fence rose
            (outcome,) = await asyncio.gather(pending, return_exceptions=True)
            if visible:
                assert isinstance(outcome, AppendResult)
                seen["before"] += 1
            else:  # not written before the fence rose: refused, never written after
                assert isinstance(outcome, FencedAppendError), outcome
                assert (outcome.token, outcome.fence) == (round_, token)
                seen["refused"] += 1
            assert await store.stream_version(stream) == visible
        assert sum(seen.values()) == 20
