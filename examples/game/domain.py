"""A match of an arena shooter as pure functions: players join, move, shoot and hit until the match ends.

The match records what the game server reports, on the match clock (`at`: seconds since the match
opened). It refuses what can never be recorded: acting before joining or after the match ended, a
position outside the arena or inside a wall, a clock that runs backwards. Whether a recorded move
was humanly possible is a judgement over the history, with thresholds that change: the anti-cheat
projection (`examples.game.read_models`) makes it, and an old match can be judged again by replaying
its stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from actorsrc import Aggregate, DomainError

Cell = tuple[int, int]

START_HEALTH = 100

# -- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenMatch:
    arena: str
    width: int
    height: int
    walls: tuple[Cell, ...] = ()


@dataclass(frozen=True, slots=True)
class JoinMatch:
    player: str
    x: int
    y: int
    at: float


@dataclass(frozen=True, slots=True)
class MovePlayer:
    player: str
    x: int
    y: int
    at: float


@dataclass(frozen=True, slots=True)
class FireShot:
    player: str
    shot_id: str
    at: float


@dataclass(frozen=True, slots=True)
class HitPlayer:
    target: str
    by: str
    shot_id: str
    damage: int
    at: float


@dataclass(frozen=True, slots=True)
class EndMatch:
    at: float


MatchCommand = OpenMatch | JoinMatch | MovePlayer | FireShot | HitPlayer | EndMatch

# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MatchOpened:
    arena: str
    width: int
    height: int
    walls: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class PlayerJoined:
    player: str
    x: int
    y: int
    at: float


@dataclass(frozen=True, slots=True)
class PlayerMoved:
    player: str
    x: int
    y: int
    at: float


@dataclass(frozen=True, slots=True)
class ShotFired:
    player: str
    shot_id: str
    at: float


@dataclass(frozen=True, slots=True)
class PlayerHit:
    target: str
    by: str
    shot_id: str
    damage: int
    at: float


@dataclass(frozen=True, slots=True)
class PlayerEliminated:
    player: str
    by: str
    at: float


@dataclass(frozen=True, slots=True)
class MatchEnded:
    winner: str | None
    at: float


MatchEvent = MatchOpened | PlayerJoined | PlayerMoved | ShotFired | PlayerHit | PlayerEliminated | MatchEnded

# -- rejections ---------------------------------------------------------------------------------


class MatchNotOpen(DomainError):
    """A command for a match that was never opened."""


class MatchAlreadyOpened(DomainError):
    """OpenMatch on a match id that is taken."""


class InvalidArena(DomainError):
    """An arena without room, or with walls outside it."""


class MatchAlreadyEnded(DomainError):
    """Anything after MatchEnded: the match's history is closed."""


class PlayerAlreadyJoined(DomainError):
    """JoinMatch twice for the same player."""


class PlayerNotInMatch(DomainError):
    """A move, shot or hit by or on a player who did not join, or who was eliminated."""


class InvalidPosition(DomainError):
    """A position outside the arena or inside a wall."""


class ClockWentBackwards(DomainError):
    """An action stamped before the match's last recorded action."""


class InvalidDamage(DomainError):
    """Damage that is not positive, or a player hitting themselves."""


# -- state --------------------------------------------------------------------------------------

MatchStatus = Literal["new", "open", "ended"]


@dataclass(frozen=True, slots=True)
class MatchState:
    status: MatchStatus = "new"
    arena: str = ""
    width: int = 0
    height: int = 0
    walls: frozenset[Cell] = frozenset()
    health: dict[str, int] = field(default_factory=dict)  # players still in play
    positions: dict[str, Cell] = field(default_factory=dict)
    eliminated: tuple[str, ...] = ()
    clock: float = 0.0
    winner: str | None = None

    def free(self, x: int, y: int) -> bool:
        return 0 <= x < self.width and 0 <= y < self.height and (x, y) not in self.walls


def _check_open(state: MatchState, command: MatchCommand) -> None:
    if state.status == "new":
        raise MatchNotOpen(f"{type(command).__name__} needs an open match")
    if state.status == "ended":
        raise MatchAlreadyEnded(f"the match ended at {state.clock}s; {type(command).__name__} comes too late")


def _check_clock(state: MatchState, at: float) -> None:
    if at < state.clock:
        raise ClockWentBackwards(f"at {at}s is before the match's last action at {state.clock}s")


def _check_player(state: MatchState, player: str) -> None:
    if player not in state.health:
        why = "was eliminated" if player in state.eliminated else "has not joined"
        raise PlayerNotInMatch(f"player {player!r} {why}")


def _check_position(state: MatchState, x: int, y: int) -> None:
    if not state.free(x, y):
        where = "inside a wall" if (x, y) in state.walls else f"outside the {state.width}x{state.height} arena"
        raise InvalidPosition(f"({x}, {y}) is {where}")


def decide(state: MatchState, command: MatchCommand) -> Sequence[MatchEvent]:
    if isinstance(command, OpenMatch):
        if state.status != "new":
            raise MatchAlreadyOpened(f"the match is already {state.status}")
        if command.width <= 0 or command.height <= 0:
            raise InvalidArena(f"an arena of {command.width}x{command.height} has no room")
        outside = [w for w in command.walls if not (0 <= w[0] < command.width and 0 <= w[1] < command.height)]
        if outside:
            raise InvalidArena(f"walls outside the arena: {outside}")
        walls = tuple(sorted(set(command.walls)))
        return [MatchOpened(command.arena, command.width, command.height, walls)]
    _check_open(state, command)
    match command:
        case JoinMatch(player, x, y, at):
            if player in state.health or player in state.eliminated:
                raise PlayerAlreadyJoined(f"player {player!r} already joined")
            _check_clock(state, at)
            _check_position(state, x, y)
            return [PlayerJoined(player, x, y, at)]
        case MovePlayer(player, x, y, at):
            _check_player(state, player)
            _check_clock(state, at)
            _check_position(state, x, y)
            return [PlayerMoved(player, x, y, at)]
        case FireShot(player, shot_id, at):
            _check_player(state, player)
            _check_clock(state, at)
            return [ShotFired(player, shot_id, at)]
        case HitPlayer(target, by, shot_id, damage, at):
            _check_player(state, target)
            _check_player(state, by)
            _check_clock(state, at)
            if damage <= 0:
                raise InvalidDamage(f"damage must be positive, got {damage}")
            if target == by:
                raise InvalidDamage(f"player {by!r} cannot hit themselves")
            hit = PlayerHit(target, by, shot_id, damage, at)
            if state.health[target] - damage > 0:
                return [hit]
            return [hit, PlayerEliminated(target, by, at)]
        case EndMatch(at):
            _check_clock(state, at)
            standing = sorted(state.health)
            return [MatchEnded(standing[0] if len(standing) == 1 else None, at)]
    raise TypeError(f"unexpected command {command!r}")


def evolve(state: MatchState, event: MatchEvent) -> MatchState:
    match event:
        case MatchOpened(arena, width, height, walls):
            return replace(state, status="open", arena=arena, width=width, height=height, walls=frozenset(walls))
        case PlayerJoined(player, x, y, at) | PlayerMoved(player, x, y, at):
            return replace(
                state,
                health=state.health if player in state.health else {**state.health, player: START_HEALTH},
                positions={**state.positions, player: (x, y)},
                clock=at,
            )
        case ShotFired(at=at):
            return replace(state, clock=at)
        case PlayerHit(target=target, damage=damage, at=at):
            return replace(state, health={**state.health, target: state.health[target] - damage}, clock=at)
        case PlayerEliminated(player=player, at=at):
            health = {p: h for p, h in state.health.items() if p != player}
            positions = {p: c for p, c in state.positions.items() if p != player}
            return replace(state, health=health, positions=positions, eliminated=(*state.eliminated, player), clock=at)
        case MatchEnded(winner, at):
            return replace(state, status="ended", winner=winner, clock=at)
    return state


game_match: Aggregate[MatchState, MatchCommand, MatchEvent] = Aggregate(
    name="match",
    initial=MatchState(),
    decide=decide,
    evolve=evolve,
    events={
        "MatchOpened": MatchOpened,
        "PlayerJoined": PlayerJoined,
        "PlayerMoved": PlayerMoved,
        "ShotFired": ShotFired,
        "PlayerHit": PlayerHit,
        "PlayerEliminated": PlayerEliminated,
        "MatchEnded": MatchEnded,
    },
    commands=(OpenMatch, JoinMatch, MovePlayer, FireShot, HitPlayer, EndMatch),
)
