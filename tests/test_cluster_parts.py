"""The cluster's pieces without a server: settings, stable hashes, rendezvous placement, lease
bookkeeping and the wire format of routed commands."""

from __future__ import annotations

import asyncio
import itertools
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import anyio
import msgspec
import pytest
from nats.errors import MaxPayloadError
from nats.js.errors import KeyWrongLastSequenceError

from actorsrc import Runtime, SQLiteEventStore
from actorsrc.cluster import wire
from actorsrc.cluster.batching import RequestBatcher
from actorsrc.cluster.leases import LeaseBook, LeaseKeeper, trusted_for
from actorsrc.cluster.placement import assignment, owner_of, shard_key
from actorsrc.cluster.settings import Cluster
from actorsrc.errors import ConcurrencyError, ConfigurationError, RemoteCommandError, UnknownCommandError
from actorsrc.hashing import SLICES, shard_of, slice_of, slice_range, stable_hash
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.registry import build_entries
from actorsrc.runtime.sender import AskOptions
from examples.bank import AccountCredited, Credit, OpenAccount, account
from examples.bank.domain import InsufficientFunds
from tests.helpers import replayed_account, wait_until
from tests.nats_support import require_nats

URL = "nats://127.0.0.1:4222"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"nats": "http://127.0.0.1:4222"}, "nats:// URLs"),
        ({"nats": ()}, "nats:// URLs"),
        ({"name": "bank.prod"}, "name="),
        ({"name": ""}, "name="),
        ({"node_id": "a b"}, "node_id="),
        ({"role": "owner"}, "role="),
        ({"shards": 0}, "shards="),
        ({"shards": True}, "shards="),
        ({"shards": 70_000}, "shards="),
        ({"partitions": 2000}, "partitions="),
        ({"lease_ttl": 0.5}, "lease_ttl="),
        ({"lease_ttl": float("nan")}, "lease_ttl="),
        ({"lease_ttl": "15"}, "lease_ttl="),
        ({"connect_timeout": 0}, "connect_timeout="),
    ],
)
def test_bad_cluster_settings_are_refused_naming_the_value(options: dict[str, object], fragment: str) -> None:
    settings: dict[str, object] = {"nats": URL, "name": "bank", **options}
    with pytest.raises(ConfigurationError, match=fragment):
        Cluster(**settings)  # type: ignore[arg-type]


def test_cluster_defaults() -> None:
    cluster = Cluster(nats=(URL, "nats://127.0.0.1:4223"), name="bank")
    assert cluster.shards >= 256
    assert cluster.lease_ttl >= 15
    assert cluster.servers == [URL, "nats://127.0.0.1:4223"]
    assert cluster.renew_every == cluster.lease_ttl / 5
    assert Cluster(nats=URL, name="bank").node_id != cluster.node_id  # unique per runtime
    assert cluster.subject("shard", 7) == "actorsrc.bank.shard.7"


def test_hashes_are_crc32_and_stable_across_processes() -> None:
    # Fixed values: Python's salted hash() would differ from one process to the next.
    assert slice_of("account-ann") == zlib.crc32(b"account-ann") % SLICES
    assert shard_of("account-ann", 256) == zlib.crc32(b"account-ann") % 256
    assert stable_hash("account-ann") == 1726825274  # the same in every process, on every machine
    assert shard_of("account-ann", 256) == 1726825274 % 256 == 58
    assert slice_range(0, 4) == (0, 256)
    assert slice_range(3, 4) == (768, 1024)
    ranges = [slice_range(p, 7) for p in range(7)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == SLICES
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))  # contiguous, no overlap
    with pytest.raises(ValueError, match="partition must be"):
        slice_range(4, 4)
    with pytest.raises(ValueError, match="partitions must be"):
        slice_range(0, 0)


def test_rendezvous_moves_about_one_nth_of_the_shards_on_a_join_and_only_the_leavers_on_a_leave() -> None:
    keys = [shard_key(s) for s in range(256)]
    three = ["n1", "n2", "n3"]
    before = {key: owner_of(key, three) for key in keys}
    after_join = {key: owner_of(key, [*three, "n4"]) for key in keys}
    moved = [key for key in keys if before[key] != after_join[key]]
    assert 40 <= len(moved) <= 90  # about 256 / 4
    assert all(after_join[key] == "n4" for key in moved)  # only to the newcomer
    after_leave = {key: owner_of(key, ["n1", "n3"]) for key in keys}
    changed = [key for key in keys if before[key] != after_leave[key]]
    assert changed
    assert all(before[key] == "n2" for key in changed)
    spread = assignment(keys, three)
    assert sorted(spread) == three
    assert sum(map(len, spread.values())) == 256
    assert all(50 <= len(owned) <= 120 for owned in spread.values())
    assert owner_of("shard.1", []) is None


def test_a_lease_is_trusted_until_the_renewal_was_sent_plus_the_ttl_less_a_margin() -> None:
    now = [100.0]
    book = LeaseBook(ttl=10.0, clock=lambda: now[0])
    lease = book.took("shard.3", revision=41, sent=99.0)
    assert lease.token == 41
    assert lease.valid_until == 99.0 + trusted_for(10.0) < 99.0 + 10.0
    assert book.expired() == []
    now[0] = 99.0 + trusted_for(10.0)
    assert book.expired() == ["shard.3"]
    book.renewed("shard.3", revision=57, sent=now[0])
    assert book.expired() == []
    assert lease.revision == 57
    assert lease.token == 41  # the token stays: renewals do not change who the store lets write
    assert book.dropped("shard.3") is lease
    assert book.held == {}


ENTRY = build_entries([account])["account"]


def test_a_routed_command_round_trips_and_only_registered_command_types_decode() -> None:
    options = AskOptions(timeout=2.5, command_id="c-1", correlation_id="r-1")
    request = wire.decode_request(wire.encode(wire.make_request(ENTRY, "ann", Credit(5), options)))
    assert isinstance(request, wire.CommandRequest)
    assert wire.decode_command(ENTRY, request) == Credit(5)
    assert wire.request_options(request) == options
    query = wire.decode_request(wire.encode(wire.make_request(ENTRY, "ann", READ_STATE, AskOptions())))
    assert isinstance(query, wire.CommandRequest)
    assert wire.decode_command(ENTRY, query) is READ_STATE
    forged = msgspec.structs.replace(request, command_type="os.system")
    with pytest.raises(UnknownCommandError, match=r"os\.system is not a command"):
        wire.decode_command(ENTRY, forged)
    batch = wire.decode_request(wire.encode(wire.CommandBatch([request, query])))
    assert isinstance(batch, wire.CommandBatch)
    assert batch.requests == [request, query]


def test_a_command_that_cannot_be_encoded_is_refused_before_sending() -> None:
    class Weird:
        pass

    with pytest.raises(ConfigurationError, match="cannot be sent to another node"):
        wire.make_request(ENTRY, "ann", Weird(), AskOptions())


def test_outcomes_and_errors_come_back_as_what_the_owner_produced() -> None:
    outcome = CommandOutcome("account-ann", 3, 17, (AccountCredited(5),), False, "digest")
    back = wire.decode_reply(wire.encode(wire.outcome_reply(ENTRY, outcome)))
    assert isinstance(back, wire.OutcomeReply)
    assert wire.outcome_of(ENTRY, back) == outcome

    rejected = wire.decode_reply(wire.encode_failure(InsufficientFunds("balance 0, debit 5")))
    assert isinstance(rejected, wire.FailureReply)
    error = wire.error_of(rejected)
    assert type(error) is InsufficientFunds
    assert str(error) == "balance 0, debit 5"

    conflict = wire.error_of(wire.decode_reply(wire.encode_failure(ConcurrencyError("account-ann", 2, 3))))  # type: ignore[arg-type]
    assert isinstance(conflict, ConcurrencyError)
    assert "account-ann" in str(conflict)

    class LocalOnly(Exception):
        pass

    unknown = wire.error_of(wire.decode_reply(wire.encode_failure(LocalOnly("boom"))))  # type: ignore[arg-type]
    assert isinstance(unknown, RemoteCommandError)
    assert unknown.remote_type.endswith("LocalOnly")
    assert "boom" in str(unknown)


class CountingStore(SQLiteEventStore):
    """Counts the command-id lookups the actors make."""

    lookups = 0

    async def find_commands(self, stream_id: str, command_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        self.lookups += 1
        return await super().find_commands(stream_id, command_ids)


async def test_a_fresh_command_id_costs_no_lookup_and_its_retry_is_still_recognised(tmp_path: Path) -> None:
    async with CountingStore.open(tmp_path / "fresh.db") as store, Runtime(store, [account]) as runtime:
        await runtime.ref(account, "ann").ask(OpenAccount(owner="Ann"))
        sender, entry = runtime._sender, ENTRY
        first = await sender.send(entry, "ann", Credit(5), AskOptions(command_id="routed-1", fresh_id=True))
        assert store.lookups == 0  # a routed command's first attempt: its id was just made
        retry = await sender.send(entry, "ann", Credit(5), AskOptions(command_id="routed-1"))
        assert store.lookups == 1  # a retry may have run: looked up, and recognised
        assert retry.duplicate
        assert retry.version == first.version == 2
        state, versions = await replayed_account(store, "ann")
        assert state.balance == 5
        assert versions == [1, 2]


class LossyKV:
    """A key-value bucket of one key where one renewal is applied but its reply is lost."""

    def __init__(self) -> None:
        self.revision = 0
        self.value = b""
        self.lose_next_reply = False

    async def create(self, key: str, value: bytes) -> int:
        self.revision += 1
        self.value = value
        return self.revision

    async def update(self, key: str, value: bytes, last: int) -> int:
        if last != self.revision:
            raise KeyWrongLastSequenceError()
        self.revision += 1
        self.value = value
        if self.lose_next_reply:
            self.lose_next_reply = False
            await anyio.sleep_forever()  # applied by the server; the reply never comes
        return self.revision

    async def get(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(key=key, value=self.value, revision=self.revision)


async def test_a_renewal_applied_with_its_reply_lost_keeps_the_lease() -> None:
    kv = LossyKV()
    keeper = LeaseKeeper(kv, "n1", LeaseBook(10.0), request_timeout=0.05)  # type: ignore[arg-type]
    lease = await keeper.take("shard.1")
    assert lease is not None
    kv.lose_next_reply = True
    assert await keeper.renew(["shard.1"]) == []  # timed out: tried again next round
    assert await keeper.renew(["shard.1"]) == []  # refused by revision, but the key is still this lease
    assert lease.revision == kv.revision  # adopted, and renewed from there on
    assert await keeper.renew(["shard.1"]) == []
    kv.value, kv.revision = msgspec.json.encode({"node": "n2", "token": 99}), kv.revision + 1  # taken over
    assert await keeper.renew(["shard.1"]) == ["shard.1"]  # refused, and not ours: lost


class TightServer:
    """A NATS client whose server refuses a message over a small max_payload, as nats-py does."""

    max_payload = 64 * 1024

    def __init__(self) -> None:
        self.sent = 0

    async def request(self, subject: str, payload: bytes, timeout: float) -> SimpleNamespace:
        self.sent += 1
        if len(payload) > self.max_payload:
            raise MaxPayloadError
        batch = wire.decode_request(payload)
        assert isinstance(batch, wire.CommandBatch)
        replies: list[wire.Reply] = [wire.MovingReply("x") for _ in batch.requests]
        return SimpleNamespace(data=wire.encode(wire.ReplyBatch(replies, "n1")))


async def test_small_commands_with_long_ids_share_messages_within_the_servers_limit() -> None:
    server = TightServer()
    batcher = RequestBatcher(server)  # type: ignore[arg-type]
    long_id = "x" * 500  # within the metadata id limit (512)
    request = wire.CommandRequest(
        "account", "ann", "Credit", b"\x81\xa6amount\x05", long_id, long_id, long_id, 5.0, True, False
    )
    results = await asyncio.gather(*(batcher.exchange("s", request, 5.0) for _ in range(200)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]
    assert all(node == "n1" for _, node in results)  # type: ignore[misc]
    assert 1 < server.sent < 200  # shared messages, each within the limit


async def test_a_clean_stop_keeps_renewing_leases_until_its_hand_off_is_over(tmp_path: Path) -> None:
    url, name = require_nats(), f"t{uuid.uuid4().hex[:10]}"
    seen: dict[str, bool] = {}
    cluster = Cluster(nats=url, name=name, node_id="a", lease_ttl=2.0, shards=4)
    async with (
        SQLiteEventStore.open(tmp_path / "stop.db") as store,
        Runtime(store, [account], cluster=cluster) as runtime,
    ):
        node = runtime._cluster
        assert node is not None
        await wait_until(lambda: len(node.serving) == 4, 20, what="the shards taken")
        heartbeats, rebalancing = node._loops
        original = node._hand_off

        async def watched(shards: set[int]) -> None:
            seen["heartbeats"] = not heartbeats.done()
            seen["rebalancing"] = not rebalancing.done()
            await original(shards)

        node._hand_off = watched  # type: ignore[method-assign]
    assert seen == {"heartbeats": True, "rebalancing": False}
