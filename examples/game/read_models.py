"""The anti-cheat: a projection that replays each match and flags what no honest client could do.

Rules, checked against the history of the match as it is replayed:

- ``speed``: a move faster than `max_speed` cells per second (straight-line distance over the time
  since the player's previous position);
- ``wall``: a move whose straight path crosses a wall cell (a teleport through a wall);
- ``phantom_hit``: a hit with a shot its shooter never fired, or a shot that already hit someone.

The projection is written once, in the portable form (`setup(db)` and `handle(db, envelope)` over
``db.execute`` with ``?`` placeholders and SQL that SQLite and PostgreSQL both accept), so the same
object runs on the SQLite file read model, the in-memory one and PostgreSQL. Each flag is keyed by
the match, the event's version and the rule, so a rebuild writes the same rows.

`recheck_match` judges an old match again, under new thresholds or as it stood at a past version, by
replaying its stream into a scratch read model: the live flags are left as they are.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from actorsrc import EventEnvelope, EventStore, Projection, SQLiteReadModel, stream_history
from examples.game.domain import (
    Cell,
    MatchOpened,
    PlayerEliminated,
    PlayerHit,
    PlayerJoined,
    PlayerMoved,
    ShotFired,
    game_match,
)

MAX_SPEED = 8.0
"""Cells per second a player can run at most (sprinting included)."""

TABLES = ("cheat_flags", "game_positions", "game_shots", "game_walls")


class Queryable(Protocol):
    """What the queries need of a read model: `SQLiteReadModel` and `PostgresReadModel` both take
    ``query(sql, (params,))`` with ``?`` placeholders."""

    async def query(self, sql: str, params: Sequence[Any] = (), /) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class CheatFlag:
    match_id: str
    player: str
    version: int  # the flagged event's version in the match's stream
    rule: str  # speed, wall or phantom_hit
    detail: str


def path_cells(start: Cell, end: Cell) -> list[Cell]:
    """The cells a straight move from `start` to `end` passes through, both ends included."""
    steps = max(abs(end[0] - start[0]), abs(end[1] - start[1]))
    if steps == 0:
        return [start]
    cells = []
    for i in range(steps + 1):
        x = start[0] + (end[0] - start[0]) * i / steps
        y = start[1] + (end[1] - start[1]) * i / steps
        cells.append((math.floor(x + 0.5), math.floor(y + 0.5)))
    return list(dict.fromkeys(cells))


def _setup(db: Any) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS cheat_flags (match_id TEXT NOT NULL, player TEXT NOT NULL,"
        " version BIGINT NOT NULL, rule TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (match_id, version, rule))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS game_positions (match_id TEXT NOT NULL, player TEXT NOT NULL,"
        " x BIGINT NOT NULL, y BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (match_id, player))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS game_shots (match_id TEXT NOT NULL, shot_id TEXT NOT NULL,"
        " shooter TEXT NOT NULL, hits BIGINT NOT NULL, PRIMARY KEY (match_id, shot_id))"
    )
    db.execute(
        "CREATE TABLE IF NOT EXISTS game_walls (match_id TEXT NOT NULL, x BIGINT NOT NULL, y BIGINT NOT NULL,"
        " PRIMARY KEY (match_id, x, y))"
    )


def _reset(db: Any) -> None:
    for table in TABLES:
        db.execute(f"DROP TABLE IF EXISTS {table}")


def _flag(db: Any, match_id: str, player: str, version: int, rule: str, detail: str) -> None:
    db.execute(
        "INSERT INTO cheat_flags (match_id, player, version, rule, detail) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (match_id, version, rule) DO NOTHING",
        (match_id, player, version, rule, detail),
    )


def _place(db: Any, match_id: str, player: str, x: int, y: int, at: float) -> None:
    db.execute(
        "INSERT INTO game_positions (match_id, player, x, y, at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (match_id, player) DO UPDATE SET x = excluded.x, y = excluded.y, at = excluded.at",
        (match_id, player, x, y, float(at)),
    )


def _check_move(db: Any, match_id: str, version: int, moved: PlayerMoved, max_speed: float) -> None:
    row = db.execute(
        "SELECT x, y, at FROM game_positions WHERE match_id = ? AND player = ?", (match_id, moved.player)
    ).fetchone()
    if row is None:  # the match refuses moves before joining; nothing to compare with
        return
    start: Cell = (int(row[0]), int(row[1]))
    distance = math.dist(start, (moved.x, moved.y))
    elapsed = moved.at - float(row[2])
    if distance > 0 and (elapsed <= 0 or distance / elapsed > max_speed):
        speed = "instantly" if elapsed <= 0 else f"at {distance / elapsed:.1f} cells/s"
        _flag(db, match_id, moved.player, version, "speed", f"moved {distance:.1f} cells {speed} (max {max_speed:g})")
    walls = {(int(x), int(y)) for x, y in db.execute("SELECT x, y FROM game_walls WHERE match_id = ?", (match_id,))}
    crossed = [cell for cell in path_cells(start, (moved.x, moved.y)) if cell in walls]
    if crossed:
        _flag(
            db,
            match_id,
            moved.player,
            version,
            "wall",
            f"moved from {start} to {(moved.x, moved.y)} through {crossed[0]}",
        )


def _check_hit(db: Any, match_id: str, version: int, hit: PlayerHit) -> None:
    row = db.execute(
        "SELECT shooter, hits FROM game_shots WHERE match_id = ? AND shot_id = ?", (match_id, hit.shot_id)
    ).fetchone()
    if row is None or row[0] != hit.by:
        _flag(
            db,
            match_id,
            hit.by,
            version,
            "phantom_hit",
            f"hit {hit.target} with shot {hit.shot_id!r} never fired by {hit.by}",
        )
        return
    if int(row[1]) > 0:
        _flag(db, match_id, hit.by, version, "phantom_hit", f"shot {hit.shot_id!r} already hit someone")
    db.execute("UPDATE game_shots SET hits = hits + 1 WHERE match_id = ? AND shot_id = ?", (match_id, hit.shot_id))


def anti_cheat(*, max_speed: float = MAX_SPEED, name: str = "cheat_flags") -> Projection:
    """The anti-cheat projection with a speed limit of `max_speed` cells per second."""

    def handle(db: Any, envelope: EventEnvelope[Any]) -> None:
        match_id = envelope.stream_id.removeprefix("match-")
        match envelope.event:
            case MatchOpened(walls=walls):
                db.executemany(
                    "INSERT INTO game_walls (match_id, x, y) VALUES (?, ?, ?) ON CONFLICT (match_id, x, y) DO NOTHING",
                    [(match_id, x, y) for x, y in walls],
                )
            case PlayerJoined(player, x, y, at):
                _place(db, match_id, player, x, y, at)
            case PlayerMoved() as moved:
                _check_move(db, match_id, envelope.version, moved, max_speed)
                _place(db, match_id, moved.player, moved.x, moved.y, moved.at)
            case ShotFired(player, shot_id):
                db.execute(
                    "INSERT INTO game_shots (match_id, shot_id, shooter, hits) VALUES (?, ?, ?, 0)"
                    " ON CONFLICT (match_id, shot_id) DO NOTHING",
                    (match_id, shot_id, player),
                )
            case PlayerHit() as hit:
                _check_hit(db, match_id, envelope.version, hit)
            case PlayerEliminated(player):
                db.execute("DELETE FROM game_positions WHERE match_id = ? AND player = ?", (match_id, player))

    return Projection(name=name, handle=handle, setup=_setup, reset=_reset, aggregates=[game_match])


cheat_flags = anti_cheat()
"""The live anti-cheat, at the default speed limit."""

_FLAGS = "SELECT match_id, player, version, rule, detail FROM cheat_flags"


async def flags_of(read_model: Queryable, match_id: str) -> list[CheatFlag]:
    """The flags of one match, in the order of its events (any read model the projection runs on)."""
    rows = await read_model.query(f"{_FLAGS} WHERE match_id = ? ORDER BY version, rule", (match_id,))
    return [CheatFlag(str(m), str(p), int(v), str(r), str(d)) for m, p, v, r, d in rows]


async def cheaters(read_model: Queryable) -> dict[str, int]:
    """Players flagged at least once, with how many flags they earned over every match."""
    rows = await read_model.query("SELECT player, count(*) FROM cheat_flags GROUP BY player ORDER BY player", ())
    return {str(player): int(count) for player, count in rows}


async def recheck_match(
    store: EventStore, match_id: str, *, max_speed: float = MAX_SPEED, to_version: int | None = None
) -> list[CheatFlag]:
    """Judge one old match again, under `max_speed`: its stream (up to `to_version`, to see the match
    as it stood then) is replayed through the anti-cheat into a scratch in-memory read model. The live
    flags stay as they are; to re-judge every match in place, rebuild the live projection instead."""
    history = await stream_history(store, game_match, match_id)
    judge = anti_cheat(max_speed=max_speed, name="cheat_recheck")

    def replay(db: sqlite3.Connection) -> None:
        judge.setup(db)
        for envelope in history:
            if to_version is None or envelope.version <= to_version:
                judge.handle(db, envelope)

    async with SQLiteReadModel.open(":memory:") as scratch:
        await scratch.transaction(replay)
        return await flags_of(scratch, match_id)
