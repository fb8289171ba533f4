"""Runtimes on cores, several in one process (each part is claimed by its own lock file descriptor, so
two runtimes of one process hold two parts exactly as two processes would): settings, layout, claims,
routing, typed errors, retries, the read side. The OS-process tests are in test_cores_processes.py."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from actorsrc import (
    ConfigurationError,
    EventEnvelope,
    Projection,
    Runtime,
    ShardMovingError,
    SQLiteEventStore,
    SQLiteReadModel,
)
from actorsrc.cores import Cores, part_of
from actorsrc.cores.claim import claim_part
from actorsrc.cores.layout import check_layout
from actorsrc.cores.server import PartServer
from actorsrc.errors import CoresLayoutError, NoFreePartError
from actorsrc.projection import ProcessManager
from examples.bank import AccountCredited, Credit, NotOpen, OpenAccount, account


def on_part(part: int, count: int = 2, prefix: str = "acc") -> str:
    """An account id whose instance lives on `part`."""
    return next(f"{prefix}{i}" for i in range(10_000) if part_of(account.stream_id(f"{prefix}{i}"), count) == part)


def accounts_on(part: int, n: int, count: int = 2) -> list[str]:
    found = (f"acc{i}" for i in range(100_000) if part_of(account.stream_id(f"acc{i}"), count) == part)
    return [next(found) for _ in range(n)]


@asynccontextmanager
async def parts(directory: Path, count: int = 2, **options: Any) -> AsyncIterator[list[Runtime]]:
    """`count` runtimes on cores, one per part, by part index."""
    async with AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(Runtime.for_cores(Cores(directory, count), [account], **options))
            for _ in range(count)
        ]
        yield sorted(runtimes, key=lambda runtime: runtime.cores_part or 0)


async def stream_in(path: Path, stream_id: str) -> list[int]:
    async with SQLiteEventStore.open(path) as store:
        return [record.version for record in await store.read_stream(stream_id)]


# -- settings, layout, claims -----------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, -1, 1025, 2.0, "2", True])
def test_a_bad_count_is_refused_naming_it(tmp_path: Path, count: Any) -> None:
    with pytest.raises(ConfigurationError, match=repr(count).replace("(", r"\(")):
        Cores(tmp_path, count)


def test_a_bad_directory_or_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="directory"):
        Cores("", 2)
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        Cores(tmp_path, 2, connect_timeout=0)
    with pytest.raises(ConfigurationError, match="too long"):
        Cores(tmp_path / ("x" * 120), 2)


def test_placement_is_the_read_sides_partition_of_the_slice_and_covers_every_part() -> None:
    seen = {part_of(f"s-{i}", 3) for i in range(1000)}
    assert seen == {0, 1, 2}
    assert part_of("account-a", 1) == 0


async def test_a_directory_split_into_another_count_is_refused(tmp_path: Path) -> None:
    async with parts(tmp_path, 2):
        pass
    with pytest.raises(CoresLayoutError, match="split into 2 parts, not 3") as caught:
        async with Runtime.for_cores(Cores(tmp_path, 3), [account]):
            pass
    assert (caught.value.count, caught.value.found) == (3, 2)
    (tmp_path / "cores.json").unlink()  # the part files alone say it too
    with pytest.raises(CoresLayoutError):
        check_layout(Cores(tmp_path, 3))


def test_a_corrupt_layout_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cores.json").write_text("hello")
    with pytest.raises(CoresLayoutError, match="not a cores layout file"):
        check_layout(Cores(tmp_path, 2))


def test_parts_are_claimed_once_each_and_a_released_part_is_taken_again(tmp_path: Path) -> None:
    cores = Cores(tmp_path, 2)
    first, second = claim_part(cores), claim_part(cores)
    assert {first.index, second.index} == {0, 1}
    with pytest.raises(NoFreePartError, match="all 2 parts"):
        claim_part(cores)
    first.release()
    again = claim_part(cores)
    assert again.index == first.index
    again.release()
    second.release()


async def test_process_managers_are_refused_on_parts_with_their_own_files(tmp_path: Path) -> None:
    manager = ProcessManager(name="pm", key=lambda envelope: None, initial=0, react=lambda s, e: (s, []))
    async with SQLiteReadModel.open(tmp_path / "read.db") as read_model:
        with pytest.raises(ConfigurationError, match="process managers"):
            async with Runtime.for_cores(
                Cores(tmp_path / "p", 2), [account], handlers=[manager], read_model=read_model
            ):
                pass
    # the refused process left its part free
    claim_part(Cores(tmp_path / "p", 2), prefer=0).release()


# -- routing ----------------------------------------------------------------------------------------


async def test_a_command_from_either_part_reaches_the_owner_and_is_in_the_owners_file(tmp_path: Path) -> None:
    async with parts(tmp_path) as (zero, one):
        mine, theirs = on_part(0), on_part(1)
        await zero.ref(account, theirs).ask(OpenAccount("ann"))  # routed to part 1
        await one.ref(account, mine).ask(OpenAccount("bob"))  # routed to part 0
        outcome = await zero.ref(account, theirs).ask(Credit(5))
        assert outcome.version == 2
        await one.ref(account, theirs).ask(Credit(1))  # local to part 1
        assert zero.ref(account, theirs) is not None
    assert await stream_in(tmp_path / "part-1-of-2.db", account.stream_id(theirs)) == [1, 2, 3]
    assert await stream_in(tmp_path / "part-0-of-2.db", account.stream_id(theirs)) == []
    assert await stream_in(tmp_path / "part-0-of-2.db", account.stream_id(mine)) == [1]


async def test_routed_errors_come_back_as_their_own_type(tmp_path: Path) -> None:
    async with parts(tmp_path) as (zero, _one):
        with pytest.raises(NotOpen):
            await zero.ref(account, on_part(1)).ask(Credit(5))


async def test_a_routed_state_query_returns_the_owners_state(tmp_path: Path) -> None:
    async with parts(tmp_path) as (zero, _one):
        theirs = on_part(1)
        await zero.ref(account, theirs).ask(OpenAccount("ann"))
        await zero.ref(account, theirs).ask(Credit(7))
        state = await zero.ref(account, theirs).state()
        assert state.balance == 7


async def test_a_retry_after_a_lost_reply_is_recognised_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answered = 0
    original = PartServer._respond

    def lose_the_first_reply(self: PartServer, writer: Any, request_id: int, data: bytes) -> None:
        nonlocal answered
        answered += 1
        if answered == 2:  # the credit (the first frame is the opening): carried out, then the link drops
            writer.close()
        original(self, writer, request_id, data)

    monkeypatch.setattr(PartServer, "_respond", lose_the_first_reply)
    async with parts(tmp_path) as (zero, _one):
        theirs = on_part(1)
        await zero.ref(account, theirs).ask(OpenAccount("ann"))
        outcome = await zero.ref(account, theirs).ask(Credit(5))
        assert outcome.version == 2
        assert outcome.duplicate
        assert answered == 3
    assert await stream_in(tmp_path / "part-1-of-2.db", account.stream_id(theirs)) == [1, 2]


async def test_an_absent_owner_is_shard_moving_within_the_timeout_then_served_once_back(tmp_path: Path) -> None:
    cores = Cores(tmp_path, 2)
    async with Runtime.for_cores(cores, [account]) as zero:
        theirs = on_part(1) if zero.cores_part == 0 else on_part(0)
        with pytest.raises(ShardMovingError, match=r"no process to take OpenAccount within 0\.3 s"):
            await zero.ref(account, theirs).ask(OpenAccount("ann"), timeout=0.3)
        async with Runtime.for_cores(cores, [account]):
            outcome = await zero.ref(account, theirs).ask(OpenAccount("ann"), timeout=10)
            assert outcome.version == 1


async def test_commands_to_a_closed_runtime_are_refused(tmp_path: Path) -> None:
    from actorsrc import RuntimeClosedError

    async with parts(tmp_path) as (zero, _one):
        ref = zero.ref(account, on_part(1))
    with pytest.raises(RuntimeClosedError):
        await ref.ask(OpenAccount("ann"))


# -- the read side ----------------------------------------------------------------------------------


def _setup(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS credits"
        " (stream TEXT, version INTEGER, amount INTEGER, PRIMARY KEY (stream, version))"
    )


def _handle(db: sqlite3.Connection, envelope: EventEnvelope[Any]) -> None:
    if isinstance(envelope.event, AccountCredited):  # a repeat would fail the primary key
        db.execute(
            "INSERT INTO credits VALUES (?, ?, ?)", (envelope.stream_id, envelope.version, envelope.event.amount)
        )


credits = Projection(name="credits", handle=_handle, setup=_setup, aggregates=[account])


async def test_each_part_projects_its_own_log_with_its_own_checkpoint_and_resumes_from_it(tmp_path: Path) -> None:
    ids = accounts_on(0, 3) + accounts_on(1, 3)
    async with SQLiteReadModel.open(tmp_path / "read.db") as read_model:
        async with parts(tmp_path / "parts", handlers=[credits], read_model=read_model) as (zero, one):
            for name in ids:
                await zero.ref(account, name).ask(OpenAccount(name))
                # read-your-writes on the aggregate's own part, routed or not
                await one.ref(account, name).ask(Credit(2), consistency=[credits])
                rows = await read_model.query("SELECT amount FROM credits WHERE stream = ?", (account.stream_id(name),))
                assert rows == [(2,)]
            statuses = {s.partition: s.status for s in zero.handler_statuses()}
            assert statuses == {"0/2": "running", "1/2": "elsewhere"}
        checkpoints = await read_model.partition_checkpoints("credits")
        assert checkpoints["credits#p0of2"] == 6
        assert checkpoints["credits#p1of2"] == 6
        async with parts(tmp_path / "parts", handlers=[credits], read_model=read_model) as (zero, one):
            for name in ids:
                await zero.ref(account, name).ask(Credit(3), consistency=[credits])
            await one.wait_for(credits, 9)  # this part's own log
        total = await read_model.query("SELECT count(*), sum(amount) FROM credits")
        assert total == [(12, 30)]  # nothing handled twice after the restart


async def test_an_owner_that_does_not_answer_is_an_ask_timeout_naming_the_command_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from actorsrc import AskTimeoutError
    from actorsrc.cores.answering import BatchAnswerer

    held: list[Callable[[bytes], object]] = []

    def never(self: BatchAnswerer, data: bytes, respond: Callable[[bytes], object]) -> None:
        held.append(respond)  # never called: the owner keeps the frame unanswered

    monkeypatch.setattr(BatchAnswerer, "start", never)
    async with parts(tmp_path) as (zero, _one):
        with pytest.raises(AskTimeoutError, match=r"did not reply to OpenAccount within 0\.2 s.*command id 'x-1'"):
            await zero.ref(account, on_part(1)).ask(OpenAccount("ann"), timeout=0.2, command_id="x-1")
        for respond in held:
            respond(b"")  # the owner can stop
