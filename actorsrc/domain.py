"""The domain model: an aggregate is a value made of pure functions (the Decider pattern).

Nothing here does I/O or imports a runtime, so `decide` and `evolve` are tested without an event loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from actorsrc.errors import ConfigurationError

State = TypeVar("State")
Command = TypeVar("Command")
Event = TypeVar("Event")

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


def fold(evolve: Callable[[State, Event], State], initial: State, events: Iterable[Event]) -> State:
    """Apply `events` to `initial` in order: the state replay and time travel rebuild."""
    state = initial
    for event in events:
        state = evolve(state, event)
    return state


def check_event_schema(
    owner: str,
    events: Mapping[str, type[Any]],
    schema_versions: Mapping[str, int],
    upcasters: Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]],
    renamed: Mapping[str, str],
) -> None:
    """Every upcaster chain is complete and every rename points at a registered type, or a clear error."""
    for type_name, current in schema_versions.items():
        for version in range(1, current):
            if (type_name, version) not in upcasters:
                raise ConfigurationError(
                    f"{owner}: event {type_name!r} is at schema version {current} but has no upcaster from "
                    f"version {version} to {version + 1}; add upcasters[({type_name!r}, {version})]"
                )
    for key, upcaster in upcasters.items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in events and isinstance(key[1], int)):
            raise ConfigurationError(f"{owner}: upcaster key {key!r} must be (registered event name, version)")
        current = schema_versions.get(key[0], 1)
        if not 1 <= key[1] < current:
            raise ConfigurationError(
                f"{owner}: upcaster for {key[0]!r} from version {key[1]}, but its current schema version is "
                f"{current}; raise schema_versions[{key[0]!r}] or remove the upcaster"
            )
        if not callable(upcaster):
            raise ConfigurationError(f"{owner}: upcaster for {key!r} is not callable")
    for old, new in renamed.items():
        if new not in events:
            raise ConfigurationError(f"{owner}: renamed event {old!r} maps to {new!r}, which is not registered")
        if old in events:
            raise ConfigurationError(f"{owner}: {old!r} is renamed but still registered under that name")


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[State, Command, Event]):
    """An aggregate type: its name, its pure behaviour and the names its events are stored under.

    - ``decide(state, command)`` returns the events a command produces, or raises a `DomainError`.
    - ``evolve(state, event)`` returns the next state; it must not fail, replay depends on it.
    - ``events`` maps stored type names to classes. Names are explicit so classes can move or be
      renamed without touching history.
    - ``commands`` lists the command classes this aggregate accepts; anything else is refused
      before it reaches the actor.
    - ``schema_versions`` gives an event type's current schema version (1 when absent).
    - ``upcasters[(type_name, v)]`` turns the stored mapping of an event at schema version v into
      version v + 1; every version below the current one needs one (checked here, at startup).
      ``renamed_events`` maps a type name found in old rows to the name it has now.
    - Snapshots: ``snapshot_every=N`` snapshots the state each time the stream's version crosses a
      multiple of N; ``snapshot_when(state, version)`` snapshots whenever it returns True. Snapshots
      are encoded as ``state_type`` (default: the class of ``initial``) and tagged with
      ``snapshot_schema_version``: bump it when the state's shape changes, and older snapshots are
      ignored (full replay) instead of misread. The newest ``snapshot_keep`` snapshots are kept.
    """

    name: str
    initial: State
    decide: Callable[[State, Command], Sequence[Event]]
    evolve: Callable[[State, Event], State]
    events: Mapping[str, type[Any]]
    commands: tuple[type[Any], ...]
    schema_versions: Mapping[str, int] = field(default_factory=dict)
    upcasters: Mapping[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = field(default_factory=dict)
    renamed_events: Mapping[str, str] = field(default_factory=dict)
    snapshot_every: int | None = None
    snapshot_when: Callable[[State, int], bool] | None = None
    snapshot_schema_version: int = 1
    snapshot_keep: int = 2
    state_type: type[Any] | None = None

    @property
    def snapshots_enabled(self) -> bool:
        return self.snapshot_every is not None or self.snapshot_when is not None

    def snapshot_due(self, state: State, old_version: int, new_version: int) -> bool:
        """Whether persisting events old_version+1..new_version should be followed by a snapshot."""
        every = self.snapshot_every
        if every is not None and new_version // every > old_version // every:
            return True
        return self.snapshot_when is not None and self.snapshot_when(state, new_version)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"aggregate name {self.name!r} must start with a letter and hold only letters, digits, "
                "'_' and '.'; it prefixes every stream id"
            )
        if not self.events:
            raise ConfigurationError(f"aggregate {self.name!r} declares no events")
        if not self.commands:
            raise ConfigurationError(f"aggregate {self.name!r} declares no commands")
        seen: dict[type[Any], str] = {}
        for type_name, cls in self.events.items():
            if not isinstance(type_name, str) or not type_name:
                raise ConfigurationError(f"aggregate {self.name!r}: event name {type_name!r} is not a name")
            if not isinstance(cls, type):
                raise ConfigurationError(
                    f"aggregate {self.name!r}: event {type_name!r} maps to {cls!r}, which is not a class"
                )
            if cls in seen:
                raise ConfigurationError(
                    f"aggregate {self.name!r}: class {cls.__qualname__} is registered twice, "
                    f"as {seen[cls]!r} and {type_name!r}"
                )
            seen[cls] = type_name
        for type_name, version in self.schema_versions.items():
            if type_name not in self.events:
                raise ConfigurationError(
                    f"aggregate {self.name!r}: schema version given for unknown event {type_name!r}"
                )
            if not isinstance(version, int) or version < 1:
                raise ConfigurationError(
                    f"aggregate {self.name!r}: schema version of {type_name!r} must be an int >= 1, got {version!r}"
                )
        for cls in self.commands:
            if not isinstance(cls, type):
                raise ConfigurationError(f"aggregate {self.name!r}: command {cls!r} is not a class")
        check_event_schema(self.name, self.events, self.schema_versions, self.upcasters, self.renamed_events)
        for option in ("snapshot_every", "snapshot_schema_version", "snapshot_keep"):
            value = getattr(self, option)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"aggregate {self.name!r}: {option} must be an int >= 1, got {value!r}")
        if self.snapshot_when is not None and not callable(self.snapshot_when):
            raise ConfigurationError(f"aggregate {self.name!r}: snapshot_when must be callable")
        if self.state_type is not None and not isinstance(self.state_type, type):
            raise ConfigurationError(f"aggregate {self.name!r}: state_type {self.state_type!r} is not a class")

    def replay(self, events: Iterable[Event]) -> State:
        """The state after `events`, starting from `initial`."""
        return fold(self.evolve, self.initial, events)

    def stream_id(self, aggregate_id: str) -> str:
        """The stream that holds the events of one instance."""
        return f"{self.name}-{aggregate_id}"
