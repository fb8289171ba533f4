"""Checking what `ask` is given (ids, timeout, flags) before anything is queued."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actorsrc.domain import Aggregate
from actorsrc.errors import ConfigurationError, LimitExceededError, UnknownCommandError
from actorsrc.runtime.command_envelope import READ_STATE
from actorsrc.store.base import CONTROL_CHARACTERS, MAX_METADATA_ID_LENGTH, is_utf8_text

if TYPE_CHECKING:
    from actorsrc.runtime.sender import AskOptions


def check_ids(**ids: str | None) -> None:
    """Refuse ids the store would refuse in event metadata, before the command is sent."""
    for name, value in ids.items():
        if value is None or (
            type(value) is str and 0 < len(value) <= MAX_METADATA_ID_LENGTH and value.isascii() and value.isprintable()
        ):
            continue  # the usual id, checked in one pass (printable ASCII has no control characters)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{name} must be a non-empty str or None, got {value!r}")
        if len(value) > MAX_METADATA_ID_LENGTH:
            raise LimitExceededError(
                f"{name} is {len(value)} characters, over the limit of {MAX_METADATA_ID_LENGTH}: {value[:40]!r}...",
                what=name,
                size=len(value),
                limit=MAX_METADATA_ID_LENGTH,
            )
        if not value.isascii() and not is_utf8_text(value):
            raise ConfigurationError(f"{name} must be valid UTF-8 text (no lone surrogates), got {value!r}")
        if CONTROL_CHARACTERS.search(value):
            raise ConfigurationError(
                f"{name} must not contain control characters (NUL, tab, newline, ...), got {value!r}"
            )


def check_timeout(timeout: object) -> None:
    """A timeout is a positive number of seconds (inf waits forever) or None (the runtime's default)."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:  # also NaN
        raise ConfigurationError(f"timeout must be a number of seconds > 0 or None, got {timeout!r}")


def check_flag(name: str, value: object) -> None:
    """A flag is True or False, nothing merely truthy."""
    if value is not True and value is not False:
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")


def check_command(aggregate: Aggregate[Any, Any, Any], command: object, *, given_to: str = "ask") -> None:
    """`UnknownCommandError` unless `command` is an instance of one of the aggregate's commands (or `READ_STATE`);
    `given_to` names what received it in the message (the testkit's `when`, for one)."""
    if command is READ_STATE or isinstance(command, aggregate.commands):
        return
    if isinstance(command, type) and command in aggregate.commands:
        raise UnknownCommandError(
            f"{given_to} got the class {command.__qualname__}; pass an instance, e.g. {command.__qualname__}(...)"
        )
    raise UnknownCommandError(
        f"{type(command).__qualname__} is not a command of aggregate {aggregate.name!r} "
        f"(accepted: {', '.join(c.__qualname__ for c in aggregate.commands)}); add it to `commands`"
    )


def checked_limit(
    aggregate: Aggregate[Any, Any, Any], command: object, options: AskOptions, default_timeout: float | None
) -> float | None:
    """Check an ask's command, ids and timeout (before anything is sent); returns its time limit in
    seconds (None: no limit)."""
    check_command(aggregate, command)
    command_id, causation_id, correlation_id = options.command_id, options.causation_id, options.correlation_id
    if command_id is not None or causation_id is not None or correlation_id is not None:
        check_ids(command_id=command_id, causation_id=causation_id, correlation_id=correlation_id)
    limit = default_timeout if options.timeout is None else options.timeout
    if limit is not None and not limit > 0:  # also refuses NaN
        raise ValueError(f"timeout must be > 0, got {limit}")
    return limit
