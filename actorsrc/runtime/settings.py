"""The runtime's settings, grouped by the side that uses them: frozen values with defaults, checked when made.

    Runtime(store, [account], write=WriteSettings(mailbox_capacity=64), read=ReadSettings(poll_interval=0.2))

Supervision has its own two values, `SupervisorPolicy` and `StoreBreakerPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass

from actorsrc.errors import ConfigurationError


def _whole(owner: str, name: str, value: object, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        alternative = " or None" if optional else ""
        raise ConfigurationError(f"{owner}.{name} must be an int >= {minimum}{alternative}, got {value!r}")


def _seconds(owner: str, name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        alternative = " or None" if optional else ""
        raise ConfigurationError(f"{owner}.{name} must be a number of seconds > 0{alternative}, got {value!r}")


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """How aggregate actors take, decide and persist commands, and how many stay in memory.

    - ``mailbox_capacity``: commands queued per actor before `ask` waits (or fails fast).
    - ``max_batch``: commands one actor decides and persists in one append.
    - ``max_conflict_retries``: reloads and re-decisions after another writer touched the stream.
    - ``default_timeout``: the `ask` (and `wait_for`) timeout when the caller gives none (None: wait forever).
    - ``persist_timeout``: an append taking longer fails with `PersistTimeoutError` (its outcome is
      unknown, so the actor reloads its state) and counts as a store failure.
    - ``passivate_after``: seconds an actor may stay idle in memory (None: until evicted by the cap).
    - ``max_live_actors``: a cap on actors in memory; the least recently used idle ones are evicted,
      and when every live actor is busy a new instance waits for room (None: no cap).
    """

    mailbox_capacity: int = 1024
    max_batch: int = 256
    max_conflict_retries: int = 3
    default_timeout: float | None = 30.0
    persist_timeout: float = 10.0
    passivate_after: float | None = 300.0
    max_live_actors: int | None = 100_000

    def __post_init__(self) -> None:
        owner = "WriteSettings"
        _whole(owner, "mailbox_capacity", self.mailbox_capacity, 1)
        _whole(owner, "max_batch", self.max_batch, 1)
        _whole(owner, "max_conflict_retries", self.max_conflict_retries, 0)
        _seconds(owner, "default_timeout", self.default_timeout, optional=True)
        _seconds(owner, "persist_timeout", self.persist_timeout)
        _seconds(owner, "passivate_after", self.passivate_after, optional=True)
        _whole(owner, "max_live_actors", self.max_live_actors, 1, optional=True)


@dataclass(frozen=True, slots=True)
class ReadSettings:
    """How projections and process managers follow the event log.

    - ``poll_interval``: seconds between looks at the store for events appended by other processes
      (this process's own appends wake the handlers at once).
    """

    poll_interval: float = 1.0

    def __post_init__(self) -> None:
        _seconds("ReadSettings", "poll_interval", self.poll_interval)
