"""What travels between nodes: a routed command and its reply, msgpack-encoded with msgspec.

Only registered types are ever decoded: a command's class is looked up among its aggregate's
`commands`, events through the aggregate's codec, and an error's class among actorsrc's errors and the
`DomainError` subclasses this process has imported. Nothing names a module to import or a class to build.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from actorsrc.domain import Aggregate
from actorsrc.errors import ActorsrcError, ConfigurationError, RemoteCommandError, UnknownCommandError
from actorsrc.recovery import codec_for
from actorsrc.runtime.command_envelope import READ_STATE, StateQuery
from actorsrc.runtime.outcome import CommandOutcome
from actorsrc.runtime.registry import AggregateEntry
from actorsrc.runtime.sender import AskOptions


class CommandRequest(msgspec.Struct, frozen=True, array_like=True, tag="c"):
    aggregate: str
    aggregate_id: str
    command_type: str  # "" for a state query
    command: bytes
    command_id: str | None
    causation_id: str | None
    correlation_id: str | None
    timeout: float | None
    wait_for_space: bool
    fresh_id: bool  # the router made the command id for this first attempt (see CommandEnvelope.fresh_id)


class WireEvent(msgspec.Struct, frozen=True, array_like=True):
    type: str
    schema_version: int
    data: bytes


class OutcomeReply(msgspec.Struct, frozen=True, array_like=True, tag="o"):
    stream_id: str
    version: int
    position: int
    events: list[WireEvent]
    duplicate: bool
    command_digest: str | None


class StateReply(msgspec.Struct, frozen=True, array_like=True, tag="s"):
    data: bytes


class MovingReply(msgspec.Struct, frozen=True, array_like=True, tag="m"):
    """The receiver does not (or no longer) serve the shard: nothing was done; ask again."""

    reason: str


class FailureReply(msgspec.Struct, frozen=True, array_like=True, tag="f"):
    error_type: str  # module.qualname of the exception
    message: str
    args: list[Any] | None  # the exception's args, when they encode
    attrs: dict[str, Any]  # its plain attributes that encode


Reply = OutcomeReply | StateReply | MovingReply | FailureReply


class CommandBatch(msgspec.Struct, frozen=True, array_like=True, tag="b"):
    """Commands for one shard sent in one message (the router coalesces what is asked in one loop turn)."""

    requests: list[CommandRequest]


class ReplyBatch(msgspec.Struct, frozen=True, array_like=True, tag="B"):
    replies: list[Reply]  # in the order of the batch's requests
    node: str  # the node that answered: the router sends that shard's next commands to it directly


_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder().encode
_request_decoder = msgspec.msgpack.Decoder(CommandRequest | CommandBatch)
_reply_decoder = msgspec.msgpack.Decoder(Reply | ReplyBatch)


_type_keys: dict[type, str] = {}


def type_key(cls: type) -> str:
    key = _type_keys.get(cls)
    if key is None:
        key = _type_keys[cls] = f"{cls.__module__}.{cls.__qualname__}"
    return key


def command_payload(command: object) -> tuple[str, bytes]:
    """The command's type key and bytes ("" and b"" for a state query); encoded once, whatever the retries."""
    if command is READ_STATE:
        return "", b""
    try:
        payload = _encoder.encode(command)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"command {type(command).__qualname__} cannot be sent to another node: {exc} (commands routed "
            "in a cluster must be msgspec-encodable: dataclasses, msgspec Structs, plain values)"
        ) from exc
    return type_key(type(command)), payload


def make_request(entry: AggregateEntry, aggregate_id: str, command: object, options: AskOptions) -> CommandRequest:
    command_type, payload = command_payload(command)
    return CommandRequest(
        entry.aggregate.name,
        aggregate_id,
        command_type,
        payload,
        options.command_id,
        options.causation_id,
        options.correlation_id,
        options.timeout,
        options.wait_for_space,
        options.fresh_id,
    )


def encode(message: CommandRequest | CommandBatch | Reply | ReplyBatch) -> bytes:
    return _encoder.encode(message)


def decode_request(data: bytes) -> CommandRequest | CommandBatch:
    request: CommandRequest | CommandBatch = _request_decoder.decode(data)
    return request


# Per aggregate value: its commands' classes by type key, and a decoder per class once one was used.
_commands: dict[int, tuple[Aggregate[Any, Any, Any], dict[str, type], dict[type, msgspec.msgpack.Decoder[Any]]]] = {}


def decode_command(entry: AggregateEntry, request: CommandRequest) -> object | StateQuery:
    if not request.command_type:
        return READ_STATE
    aggregate = entry.aggregate
    cached = _commands.get(id(aggregate))
    if cached is None or cached[0] is not aggregate:
        cached = _commands[id(aggregate)] = (aggregate, {type_key(cls): cls for cls in aggregate.commands}, {})
    cls = cached[1].get(request.command_type)
    if cls is None:
        raise UnknownCommandError(
            f"{request.command_type} is not a command of aggregate {aggregate.name!r} on this node"
        )
    decoder = cached[2].get(cls)
    if decoder is None:
        decoder = cached[2][cls] = msgspec.msgpack.Decoder(cls)
    command: object = decoder.decode(request.command)
    return command


def request_options(request: CommandRequest) -> AskOptions:
    return AskOptions(
        request.timeout,
        request.command_id,
        request.causation_id,
        request.correlation_id,
        request.wait_for_space,
        request.fresh_id,
    )


def outcome_reply(entry: AggregateEntry, outcome: CommandOutcome[Any]) -> OutcomeReply:
    names = _event_names(entry.aggregate)
    # Plain encoding: these events were checked against their declared types when they were stored.
    events = []
    for event in outcome.events:
        name = names.get(type(event))
        if name is None:
            codec = codec_for(entry.aggregate)
            name = names[type(event)] = (codec.type_name(event), codec.schema_version(codec.type_name(event)))
        events.append(WireEvent(name[0], name[1], _json(event)))
    return OutcomeReply(
        outcome.stream_id, outcome.version, outcome.position, events, outcome.duplicate, outcome.command_digest
    )


# Per aggregate value: each event class's stored name and schema version, found once.
_names: dict[int, tuple[Aggregate[Any, Any, Any], dict[type, tuple[str, int]]]] = {}


def _event_names(aggregate: Aggregate[Any, Any, Any]) -> dict[type, tuple[str, int]]:
    cached = _names.get(id(aggregate))
    if cached is None or cached[0] is not aggregate:
        cached = _names[id(aggregate)] = (aggregate, {})
    return cached[1]


def state_reply(entry: AggregateEntry, state: object) -> StateReply:
    return StateReply(codec_for(entry.aggregate).encode_state(state))


def _plain(value: object) -> bool:
    try:
        _encoder.encode(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def encode_failure(error: BaseException) -> bytes:
    return _encoder.encode(failure_reply(error))


def failure_reply(error: BaseException) -> FailureReply:
    args = list(error.args) if _plain(list(error.args)) else None
    attrs = {k: v for k, v in vars(error).items() if not k.startswith("_") and _plain(v)}
    return FailureReply(type_key(type(error)), str(error), args, attrs)


def decode_reply(data: bytes) -> Reply | ReplyBatch:
    reply: Reply | ReplyBatch = _reply_decoder.decode(data)
    return reply


def outcome_of(entry: AggregateEntry, reply: OutcomeReply) -> CommandOutcome[Any]:
    decode = codec_for(entry.aggregate).decode_stored
    stream_id = reply.stream_id
    first = reply.version - len(reply.events) + 1
    events = tuple([decode(stream_id, first + i, e.type, e.schema_version, e.data) for i, e in enumerate(reply.events)])
    return CommandOutcome(stream_id, reply.version, reply.position, events, reply.duplicate, reply.command_digest)


def state_of(entry: AggregateEntry, stream_id: str, reply: StateReply) -> Any:
    return codec_for(entry.aggregate).decode_state(stream_id, 0, reply.data)


def _known_errors() -> dict[str, type[BaseException]]:
    known: dict[str, type[BaseException]] = {}
    pending: list[type[BaseException]] = [ActorsrcError]
    while pending:
        cls = pending.pop()
        known[type_key(cls)] = cls
        pending.extend(cls.__subclasses__())
    for builtin in (ValueError, TypeError, KeyError, LookupError, ArithmeticError, RuntimeError):
        known[type_key(builtin)] = builtin
    return known


def error_of(reply: FailureReply) -> BaseException:
    """The owner's exception rebuilt as its own class when that class is known here, else `RemoteCommandError`."""
    cls = _known_errors().get(reply.error_type)
    if cls is None:
        return RemoteCommandError(reply.error_type, reply.message)
    error = cls.__new__(cls)
    BaseException.__init__(error, *(reply.args if reply.args is not None else (reply.message,)))
    with contextlib.suppress(AttributeError):  # a class with __slots__ only: its message is enough
        error.__dict__.update(reply.attrs)
    return error
