"""Answering routed commands without a task per command: `LocalSender.submit` (queue now, answer from the
reply future's done-callback) and `BatchAnswerer` (a batch's replies in order, each as a local ask would
end), and the caller's link (a failed reply's error is never logged as lost)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from actorsrc import (
    AskTimeoutError,
    MailboxFullError,
    Runtime,
    RuntimeClosedError,
    ShardMovingError,
    SQLiteEventStore,
    WriteSettings,
)
from actorsrc.cluster import wire
from actorsrc.cores.answering import BatchAnswerer
from actorsrc.cores.link import PartLink
from actorsrc.cores.settings import Cores
from actorsrc.errors import FencedAppendError
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.local_sender import LocalSender
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import AskOptions
from actorsrc.testing.faults import FaultyStore
from examples.bank import Credit, InsufficientFunds, OpenAccount, account
from tests.helpers import replayed_account, wait_until

Replies = list["asyncio.Future[Any]"]


@asynccontextmanager
async def held_runtime(tmp_path: Path, **write: Any) -> AsyncIterator[tuple[FaultyStore, Runtime]]:
    async with SQLiteEventStore.open(tmp_path / "a.db") as inner:
        store = FaultyStore(inner)
        async with Runtime(store, [account], write=WriteSettings(**write)) as runtime:
            yield store, runtime


def parts_of(runtime: Runtime) -> tuple[LocalSender, AggregateEntry]:
    return runtime._sender, runtime._entries["account"]


def collect(replies: Replies) -> Any:
    return replies.append


def pending_deadlines(sender: LocalSender) -> int:
    deadlines = sender._deadlines
    return 0 if deadlines is None else sum(len(bucket) for bucket in deadlines.buckets.values())


# -- LocalSender.submit --------------------------------------------------------------------------------


async def test_submit_answers_through_the_callback_and_leaves_no_deadline_behind(tmp_path: Path) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        sender, entry = parts_of(runtime)
        replies: Replies = []
        sender.submit(entry, "a", OpenAccount("ann"), AskOptions(timeout=30), collect(replies))
        sender.submit(entry, "a", Credit(5), AskOptions(timeout=30, command_id="c-1"), collect(replies))
        sender.submit(entry, "a", READ_STATE, AskOptions(timeout=30), collect(replies))
        await wait_until(lambda: len(replies) == 3, what="three answers")
        opened, credited, state = (reply.result() for reply in replies)
        assert (opened.version, credited.version, state.balance) == (1, 2, 5)
        assert pending_deadlines(sender) == 0  # answered: none kept until its tick


async def test_submit_raises_what_send_raises_before_queuing_and_never_answers(tmp_path: Path) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        sender, entry = parts_of(runtime)
        replies: Replies = []
        with pytest.raises(ValueError, match="timeout must be > 0"):
            sender.submit(entry, "a", Credit(1), AskOptions(timeout=-1), collect(replies))
        sender.accepting = False
        with pytest.raises(RuntimeClosedError):
            sender.submit(entry, "a", Credit(1), AskOptions(timeout=30), collect(replies))
        sender.accepting = True
        await anyio.lowlevel.checkpoint()  # a callback wrongly left on a cancelled reply would have run by now
        assert replies == []
        assert pending_deadlines(sender) == 0


async def test_submit_with_a_full_mailbox_fails_fast_or_waits_for_room(tmp_path: Path) -> None:
    async with held_runtime(tmp_path, mailbox_capacity=2, max_batch=1) as (store, runtime):
        sender, entry = parts_of(runtime)
        await runtime.ref(account, "busy").ask(OpenAccount("ann"))
        store.hold_appends()
        replies: Replies = []
        for _ in range(3):  # one in its batch at the held append, two in the mailbox
            sender.submit(entry, "busy", Credit(1), AskOptions(timeout=30), collect(replies))
        await store.held()
        await wait_until(
            lambda: runtime.mailbox_length(account, "busy") == 2 and not sender._later, what="a full mailbox"
        )
        with pytest.raises(MailboxFullError, match="account-busy"):
            sender.submit(entry, "busy", Credit(1), AskOptions(timeout=30, wait_for_space=False), collect(replies))
        sender.submit(entry, "busy", Credit(1), AskOptions(timeout=30), collect(replies))  # waits for room
        assert runtime.mailbox_length(account, "busy") == 2
        store.release_appends()
        await wait_until(lambda: len(replies) == 4, what="four answers")
        assert sorted(reply.result().version for reply in replies) == [2, 3, 4, 5]
        assert pending_deadlines(sender) == 0


async def test_a_submitted_command_waiting_for_room_times_out_and_never_runs(tmp_path: Path) -> None:
    async with held_runtime(tmp_path, mailbox_capacity=1, max_batch=1) as (store, runtime):
        sender, entry = parts_of(runtime)
        await runtime.ref(account, "busy").ask(OpenAccount("ann"))
        store.hold_appends()
        queued: Replies = []
        for _ in range(2):
            sender.submit(entry, "busy", Credit(1), AskOptions(timeout=30), collect(queued))
        await store.held()
        await wait_until(
            lambda: runtime.mailbox_length(account, "busy") == 1 and not sender._later, what="a full mailbox"
        )
        late: Replies = []
        sender.submit(entry, "busy", Credit(100), AskOptions(timeout=0.05), collect(late))
        await wait_until(lambda: len(late) == 1, what="the waiting command to time out")
        with pytest.raises(AskTimeoutError, match=r"did not reply to Credit within 0\.05 s"):
            late[0].result()
        store.release_appends()
        await wait_until(lambda: len(queued) == 2, what="the queued commands")
        assert (await runtime.ref(account, "busy").state()).balance == 2
        assert pending_deadlines(sender) == 0


async def test_a_submitted_command_waiting_for_room_is_refused_when_the_runtime_closes(tmp_path: Path) -> None:
    async with SQLiteEventStore.open(tmp_path / "a.db") as inner:
        store = FaultyStore(inner)
        runtime = Runtime(store, [account], write=WriteSettings(mailbox_capacity=1, max_batch=1))
        await runtime.__aenter__()
        sender, entry = parts_of(runtime)
        await runtime.ref(account, "busy").ask(OpenAccount("ann"))
        store.hold_appends()
        queued: Replies = []
        for _ in range(2):
            sender.submit(entry, "busy", Credit(1), AskOptions(timeout=30), collect(queued))
        await store.held()
        # Both queued: one in its batch at the held append, one in the mailbox (none still waiting for room).
        await wait_until(
            lambda: runtime.mailbox_length(account, "busy") == 1 and not sender._later, what="a full mailbox"
        )
        waiting: Replies = []
        sender.submit(entry, "busy", Credit(100), AskOptions(timeout=30), collect(waiting))
        closing = asyncio.get_running_loop().create_task(runtime.__aexit__(None, None, None))
        await wait_until(lambda: len(waiting) == 1, what="the waiting command to be refused")
        with pytest.raises(RuntimeClosedError):
            waiting[0].result()
        store.release_appends()
        await closing
        assert [reply.result().version for reply in queued] == [2, 3]  # the queued ones were finished
        state, versions = await replayed_account(inner, "busy")
        assert (state.balance, versions) == (2, [1, 2, 3])


# -- BatchAnswerer -------------------------------------------------------------------------------------


def request(aggregate_id: str, command: object, *, aggregate: str = "account", **options: Any) -> wire.CommandRequest:
    entry = AggregateEntry(account, None)  # type: ignore[arg-type]  # make_request only reads the name
    made = wire.make_request(entry, aggregate_id, command, AskOptions(**options))
    return msgspec_replace(made, aggregate=aggregate)


def msgspec_replace(made: wire.CommandRequest, **changes: Any) -> wire.CommandRequest:
    import msgspec

    return msgspec.structs.replace(made, **changes)


async def answer(answerer: BatchAnswerer, *requests: wire.CommandRequest) -> list[wire.Reply]:
    reply = wire.decode_reply(await answerer.answer(wire.encode(wire.CommandBatch(list(requests)))))
    assert isinstance(reply, wire.ReplyBatch)
    assert reply.node == answerer.name
    return reply.replies


async def test_a_batch_is_answered_in_order_each_command_as_a_local_ask_would_end(tmp_path: Path) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        sender, _entry = parts_of(runtime)
        answerer = BatchAnswerer(runtime._entries, sender, lambda stream: stream != "account-elsewhere", "part 0")
        await runtime.ref(account, "ann").ask(OpenAccount("ann"))
        unknown_command = msgspec_replace(request("ann", Credit(1)), command_type="x.Forged")
        replies = await answer(
            answerer,
            request("ann", Credit(5), command_id="r-1", fresh_id=True),
            request("ann", Credit(1), aggregate="ghost"),
            request("", Credit(1)),
            request("elsewhere", Credit(1)),
            unknown_command,
            request("ann", OpenAccount("again")),
            request("ann", READ_STATE),
        )
        outcome, ghost, blank, moving, forged, rejected, state = replies
        assert isinstance(outcome, wire.OutcomeReply)
        assert outcome.version == 2
        assert isinstance(ghost, wire.FailureReply)
        assert "'ghost' is not registered on part 0" in ghost.message
        assert isinstance(blank, wire.FailureReply)
        assert blank.error_type.endswith("InvalidStreamIdError")
        assert isinstance(moving, wire.MovingReply)
        assert "not served by part 0" in moving.reason
        assert isinstance(forged, wire.FailureReply)
        assert "x.Forged is not a command" in forged.message
        assert isinstance(rejected, wire.FailureReply)
        assert rejected.error_type.endswith("AlreadyOpen")
        assert isinstance(state, wire.StateReply)
        assert wire.state_of(runtime._entries["account"], "account-ann", state).balance == 5
        assert answerer.served == 2  # the outcome and the state (a rejection or error is not counted)


async def test_undecodable_and_empty_batches_are_answered(tmp_path: Path) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        answerer = BatchAnswerer(runtime._entries, runtime._sender, lambda _stream: True, "part 0")
        garbage = wire.decode_reply(await answerer.answer(b"\xc1not msgpack"))
        assert isinstance(garbage, wire.FailureReply)
        assert "could not be decoded" in garbage.message
        assert await answer(answerer) == []


class AnswersWith:
    """A stand-in for `LocalSender.submit` whose every reply fails with `error` (raised at once, or later)."""

    def __init__(self, error: BaseException, *, at_once: bool) -> None:
        self.error = error
        self.at_once = at_once

    def submit(self, entry: Any, aggregate_id: str, command: Any, options: Any, on_reply: Any) -> None:
        if self.at_once:
            raise self.error
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        reply.add_done_callback(on_reply)
        reply.set_exception(self.error)


@pytest.mark.parametrize("at_once", [True, False], ids=["raised-at-once", "in-the-reply"])
async def test_the_moving_errors_are_the_answerers_own(tmp_path: Path, at_once: bool) -> None:
    entries = {"account": AggregateEntry(account, None)}  # type: ignore[arg-type]  # routing only reads names
    fenced = FencedAppendError("account-ann", 3, 1, 2)
    closed = RuntimeClosedError("closing")
    moved = ShardMovingError("shard 3 moved")

    async def replies(error: BaseException, **options: Any) -> wire.Reply:
        local = AnswersWith(error, at_once=at_once)
        answerer = BatchAnswerer(entries, local, lambda _stream: True, "x", **options)  # type: ignore[arg-type]
        (reply,) = await answer(answerer, request("ann", Credit(1)))
        return reply

    # On cores (the default): a closing process, like a moved shard, means "ask again"; a fenced append is an error.
    assert isinstance(await replies(moved), wire.MovingReply)
    assert isinstance(await replies(closed), wire.MovingReply)
    assert isinstance(await replies(fenced), wire.FailureReply)
    # In a cluster (`ShardServer`): a fenced append means another node owns the shard now.
    cluster = {"moving": (ShardMovingError, FencedAppendError)}
    assert isinstance(await replies(fenced, **cluster), wire.MovingReply)
    assert isinstance(await replies(closed, **cluster), wire.FailureReply)


async def test_a_reply_that_cannot_be_built_still_answers_its_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        answerer = BatchAnswerer(runtime._entries, runtime._sender, lambda _stream: True, "part 0")
        await runtime.ref(account, "ann").ask(OpenAccount("ann"))

        def broken(entry: AggregateEntry, outcome: Any) -> wire.OutcomeReply:
            raise RuntimeError("a bug while encoding")

        monkeypatch.setattr(wire, "outcome_reply", broken)
        with anyio.fail_after(10):  # without the guard, the batch would never be answered
            failed, rejected = await answer(answerer, request("ann", Credit(1)), request("ann", OpenAccount("x")))
        assert isinstance(failed, wire.FailureReply)
        assert "a bug while encoding" in failed.message
        assert isinstance(rejected, wire.FailureReply)
        assert rejected.error_type.endswith("AlreadyOpen")


async def test_a_domain_error_crosses_as_its_own_class(tmp_path: Path) -> None:
    async with held_runtime(tmp_path) as (_store, runtime):
        answerer = BatchAnswerer(runtime._entries, runtime._sender, lambda _stream: True, "part 0")
        from examples.bank import Debit

        (opened,) = await answer(answerer, request("ann", OpenAccount("ann")))
        assert isinstance(opened, wire.OutcomeReply)
        (refused,) = await answer(answerer, request("ann", Debit(5)))
        assert isinstance(refused, wire.FailureReply)
        assert isinstance(wire.error_of(refused), InsufficientFunds)


# -- the caller's link ---------------------------------------------------------------------------------


async def test_a_reply_failed_after_its_caller_left_is_not_logged_as_lost(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    cores = Cores(tmp_path, 2)
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # an owner that takes requests and never answers

    server = await asyncio.start_unix_server(silent, path=str(cores.socket_path(1)))
    link = PartLink(cores, 1)
    try:
        futures = [
            link.exchange(request("ann", Credit(1)), loop.time() + 0.01),  # times out
            link.exchange(request("bob", Credit(1)), None),  # fails when the connection drops
        ]
        await wait_until(lambda: futures[0].done() and bool(connections), what="the timeout")
        connections[0].close()
        await wait_until(lambda: futures[1].done(), what="the dropped connection")
        assert "exception=TimeoutError" in repr(futures[0])
        assert "exception=PartUnreachable" in repr(futures[1])
        futures.clear()  # their callers had left: nobody awaits them
        gc.collect()
        await anyio.lowlevel.checkpoint()
        assert [c for c in reported if "never retrieved" in str(c.get("message"))] == []
    finally:
        await link.close()
        server.close()
        loop.set_exception_handler(previous)


async def test_an_answered_frame_keeps_no_timer_and_nothing_alive(tmp_path: Path) -> None:
    from actorsrc.cores import link as link_module
    from tests.test_cores import on_part, parts

    async with parts(tmp_path) as (zero, _one):
        ref = zero.ref(account, on_part(1))
        await ref.ask(OpenAccount("ann"))  # the default timeout: 30 s
        await asyncio.gather(*(ref.ask(Credit(1)) for _ in range(20)))
        gc.collect()
        # A timer left pending until the latest deadline would keep each frame (its requests and futures).
        assert [o for o in gc.get_objects() if isinstance(o, link_module._Frame)] == []
