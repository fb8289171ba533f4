"""The game wired together: one match played through a runtime, judged live and re-checked.

Run the demo with ``python -m examples.game.app [DIRECTORY]``: two players play a match on an arena
split by a wall; one of them runs too fast, walks through the wall and lands hits with shots never
fired. The demo prints the live anti-cheat's flags, then re-checks the old match under a looser speed
limit by replaying its stream. The databases go to DIRECTORY, or to a temporary one.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import anyio

from actorsrc import App, Runtime, SQLiteEventStore, SQLiteReadModel
from examples.game.domain import (
    EndMatch,
    FireShot,
    HitPlayer,
    JoinMatch,
    MatchCommand,
    MovePlayer,
    OpenMatch,
    game_match,
)
from examples.game.read_models import cheat_flags, flags_of, recheck_match

game = App(aggregates=[game_match], handlers=[cheat_flags], db="game.db", read_db="game-read.db")
"""For the command line: ``actorsrc projections --app examples.game.app:game list``."""

ARENA = OpenMatch("dust", 10, 10, tuple((5, y) for y in range(9)))  # a wall at x = 5, a gap at the top

DEMO_MATCH: tuple[MatchCommand, ...] = (
    ARENA,
    JoinMatch("ann", 1, 1, 0.0),
    JoinMatch("bob", 8, 1, 0.5),
    MovePlayer("bob", 8, 9, 1.0),  # 8 cells in half a second
    MovePlayer("ann", 4, 1, 1.0),
    MovePlayer("ann", 6, 1, 1.5),  # through the wall
    HitPlayer("bob", "ann", "ghost", 10, 1.6),  # a shot never fired
    FireShot("ann", "a1", 1.7),
    HitPlayer("bob", "ann", "a1", 10, 1.8),
    EndMatch(3.0),
)


async def main(directory: str | None = None) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(directory or scratch)
        async with (
            SQLiteEventStore.open(where / "game.db") as store,
            SQLiteReadModel.open(where / "game-read.db") as read_model,
            Runtime(store, [game_match], handlers=[cheat_flags], read_model=read_model) as runtime,
        ):
            ref = runtime.ref(game_match, "m1")
            for command in DEMO_MATCH:
                await ref.ask(command, consistency=[cheat_flags])
            print("flags raised live:")
            for flag in await flags_of(read_model, "m1"):
                print(f"  event {flag.version:>2}  {flag.player:<4} {flag.rule:<12} {flag.detail}")
            print("re-checked with a speed limit of 20 cells/s:")
            for flag in await recheck_match(store, "m1", max_speed=20.0):
                print(f"  event {flag.version:>2}  {flag.player:<4} {flag.rule:<12} {flag.detail}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else None)
