"""The game example: the match's rules and rejections, the anti-cheat over replayed matches, re-checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from actorsrc import Runtime, SQLiteEventStore, check_event_names, load_state
from actorsrc.testing import given, on, project
from examples.game import (
    CheatFlag,
    ClockWentBackwards,
    EndMatch,
    FireShot,
    HitPlayer,
    InvalidArena,
    InvalidDamage,
    InvalidPosition,
    JoinMatch,
    MatchAlreadyEnded,
    MatchAlreadyOpened,
    MatchCommand,
    MatchEnded,
    MatchNotOpen,
    MatchOpened,
    MovePlayer,
    OpenMatch,
    PlayerAlreadyJoined,
    PlayerEliminated,
    PlayerHit,
    PlayerJoined,
    PlayerMoved,
    PlayerNotInMatch,
    ShotFired,
    anti_cheat,
    cheat_flags,
    cheaters,
    flags_of,
    game_match,
    path_cells,
    recheck_match,
)
from examples.game.app import main
from tests.example_read_models import READ_MODELS

# A 10x10 arena split by a wall at x = 5, with a gap at the top row (y = 9).
WALL = tuple((5, y) for y in range(9))
OPENED = MatchOpened("dust", 10, 10, WALL)
ANN = PlayerJoined("ann", 1, 1, 0.0)
BOB = PlayerJoined("bob", 8, 1, 0.5)

# -- the match's rules ---------------------------------------------------------------------------


def test_a_match_opens_once_with_its_walls_sorted_and_inside_the_arena() -> None:
    given(game_match).when(OpenMatch("dust", 10, 10, ((5, 1), (5, 0), (5, 1)))).then(
        MatchOpened("dust", 10, 10, ((5, 0), (5, 1)))
    ).then_state(status="open", walls=frozenset({(5, 0), (5, 1)}))
    given(game_match).when(OpenMatch("dust", 10, 0)).then_rejected(InvalidArena, match="has no room")
    given(game_match).when(OpenMatch("dust", 3, 3, ((3, 0),))).then_rejected(InvalidArena, match=r"\[\(3, 0\)\]")
    given(game_match, OPENED).when(OpenMatch("dust", 10, 10)).then_rejected(MatchAlreadyOpened)


def test_players_join_and_move_on_free_cells_of_an_open_match() -> None:
    given(game_match).when(JoinMatch("ann", 1, 1, 0.0)).then_rejected(MatchNotOpen, match="needs an open match")
    decision = given(game_match, OPENED).when(JoinMatch("ann", 1, 1, 0.0)).then(ANN)
    decision.when(MovePlayer("ann", 2, 1, 0.4)).then(PlayerMoved("ann", 2, 1, 0.4)).then_state(
        positions={"ann": (2, 1)}, health={"ann": 100}, clock=0.4
    )
    given(game_match, OPENED, ANN).when(JoinMatch("ann", 2, 2, 1.0)).then_rejected(PlayerAlreadyJoined)
    given(game_match, OPENED).when(MovePlayer("bob", 2, 1, 1.0)).then_rejected(PlayerNotInMatch, match="not joined")


def test_positions_in_walls_or_outside_the_arena_and_a_clock_going_back_are_refused() -> None:
    match = given(game_match, OPENED, ANN, BOB)
    match.when(MovePlayer("ann", 5, 3, 1.0)).then_rejected(InvalidPosition, match=r"\(5, 3\) is inside a wall")
    match.when(MovePlayer("ann", 10, 3, 1.0)).then_rejected(InvalidPosition, match="outside the 10x10 arena")
    match.when(JoinMatch("cy", -1, 0, 1.0)).then_rejected(InvalidPosition)
    match.when(FireShot("ann", "s1", 0.2)).then_rejected(ClockWentBackwards, match="before the match's last action")


def test_a_lethal_hit_eliminates_the_target_who_can_act_no_more() -> None:
    wounded = given(game_match, OPENED, ANN, BOB, ShotFired("bob", "s1", 1.0), PlayerHit("ann", "bob", "s1", 60, 1.1))
    assert wounded.state.health == {"ann": 40, "bob": 100}
    eliminated = wounded.when(HitPlayer("ann", "bob", "s2", 40, 2.0)).then(
        PlayerHit("ann", "bob", "s2", 40, 2.0), PlayerEliminated("ann", "bob", 2.0)
    )
    eliminated.then_state(health={"bob": 100}, eliminated=("ann",), positions={"bob": (8, 1)})
    eliminated.when(MovePlayer("ann", 1, 2, 3.0)).then_rejected(PlayerNotInMatch, match="'ann' was eliminated")
    eliminated.when(EndMatch(3.0)).then(MatchEnded("bob", 3.0)).then_state(status="ended", winner="bob")
    wounded.when(HitPlayer("bob", "bob", "s3", 5, 2.0)).then_rejected(InvalidDamage, match="cannot hit themselves")
    wounded.when(HitPlayer("bob", "ann", "s3", 0, 2.0)).then_rejected(InvalidDamage, match="must be positive")


def test_nothing_is_recorded_after_the_match_ended() -> None:
    ended = given(game_match, OPENED, ANN, BOB, MatchEnded(None, 9.0))
    ended.when(MovePlayer("ann", 1, 2, 9.5)).then_rejected(MatchAlreadyEnded, match="ended at 9.0s; MovePlayer")
    ended.when(FireShot("bob", "s1", 9.5)).then_rejected(MatchAlreadyEnded)
    ended.when(EndMatch(10.0)).then_rejected(MatchAlreadyEnded)


def test_a_straight_path_lists_the_cells_it_crosses() -> None:
    assert path_cells((4, 1), (6, 1)) == [(4, 1), (5, 1), (6, 1)]
    assert path_cells((0, 0), (2, 2)) == [(0, 0), (1, 1), (2, 2)]
    assert path_cells((3, 3), (3, 3)) == [(3, 3)]


# -- the anti-cheat ------------------------------------------------------------------------------

HONEST = (
    OPENED,
    ANN,
    BOB,
    PlayerMoved("ann", 3, 1, 1.0),  # 2 cells in 1 s
    PlayerMoved("ann", 4, 5, 2.0),
    ShotFired("ann", "a1", 2.1),
    PlayerHit("bob", "ann", "a1", 30, 2.2),
    PlayerMoved("bob", 8, 9, 3.0),  # 8 cells in 2.5 s, along the free side of the wall
    PlayerMoved("bob", 4, 9, 4.0),  # through the gap at the top
    MatchEnded(None, 5.0),
)

CHEATED = (
    OPENED,
    ANN,  # v2
    BOB,  # v3
    PlayerMoved("bob", 8, 9, 1.0),  # v4: 8 cells in 0.5 s: speed
    PlayerMoved("ann", 4, 1, 1.0),  # v5: fine
    PlayerMoved("ann", 6, 1, 1.5),  # v6: 2 cells in 0.5 s, through (5, 1): wall
    PlayerHit("bob", "ann", "ghost", 10, 1.6),  # v7: never fired: phantom hit
    ShotFired("ann", "a1", 1.7),  # v8
    PlayerHit("bob", "ann", "a1", 10, 1.8),  # v9: fine
    PlayerHit("bob", "ann", "a1", 10, 1.9),  # v10: the same bullet twice: phantom hit
    PlayerHit("ann", "bob", "a1", 10, 2.0),  # v11: ann's shot claimed by bob: phantom hit
    PlayerMoved("ann", 6, 1, 2.0),  # v12: standing still is no teleport
    PlayerMoved("ann", 7, 1, 2.0),  # v13: moving in no time at all: speed
)

CHEATED_FLAGS = [
    ("m1", "bob", 4, "speed", "moved 8.0 cells at 16.0 cells/s (max 8)"),
    ("m1", "ann", 6, "wall", "moved from (4, 1) to (6, 1) through (5, 1)"),
    ("m1", "ann", 7, "phantom_hit", "hit bob with shot 'ghost' never fired by ann"),
    ("m1", "ann", 10, "phantom_hit", "shot 'a1' already hit someone"),
    ("m1", "bob", 11, "phantom_hit", "hit ann with shot 'a1' never fired by bob"),
    ("m1", "ann", 13, "speed", "moved 1.0 cells instantly (max 8)"),
]


async def test_an_honest_match_raises_no_flag() -> None:
    tables = await project(cheat_flags, on(game_match, "m1", *HONEST))
    tables.then_rows("cheat_flags")
    tables.then_rows("game_positions", ("m1", "ann", 4, 5, 2.0), ("m1", "bob", 4, 9, 4.0))


async def test_impossible_speeds_walls_crossed_and_hits_without_a_shot_are_flagged() -> None:
    tables = await project(cheat_flags, on(game_match, "m1", *CHEATED), on(game_match, "m2", *HONEST))
    tables.then_rows("cheat_flags", *CHEATED_FLAGS)
    assert sorted(tables["game_walls"]) == [("m1", 5, y) for y in range(9)] + [("m2", 5, y) for y in range(9)]


async def test_an_eliminated_player_leaves_the_board_and_a_stricter_limit_flags_more() -> None:
    events = (*HONEST[:3], ShotFired("bob", "b1", 1.0), PlayerHit("ann", "bob", "b1", 100, 1.1))
    (await project(cheat_flags, *events, PlayerEliminated("ann", "bob", 1.1), aggregate_id="m3")).then_rows(
        "game_positions", ("m3", "bob", 8, 1, 0.5)
    )
    strict = anti_cheat(max_speed=3.5, name="strict")
    (await project(strict, on(game_match, "m2", *HONEST))).then_rows(
        "cheat_flags",
        ("m2", "ann", 5, "speed", "moved 4.1 cells at 4.1 cells/s (max 3.5)"),
        ("m2", "bob", 9, "speed", "moved 4.0 cells at 4.0 cells/s (max 3.5)"),
    )


# -- end to end, on every read model ------------------------------------------------------------

COMMANDS: list[MatchCommand] = [
    OpenMatch("dust", 10, 10, WALL),
    JoinMatch("ann", 1, 1, 0.0),
    JoinMatch("bob", 8, 1, 0.5),
    MovePlayer("bob", 8, 9, 1.0),
    MovePlayer("ann", 4, 1, 1.0),
    MovePlayer("ann", 6, 1, 1.5),
    HitPlayer("bob", "ann", "ghost", 10, 1.6),
    FireShot("ann", "a1", 1.7),
    HitPlayer("bob", "ann", "a1", 10, 1.8),
    HitPlayer("bob", "ann", "a1", 10, 1.9),
    HitPlayer("ann", "bob", "a1", 10, 2.0),
    MovePlayer("ann", 6, 1, 2.0),
    MovePlayer("ann", 7, 1, 2.0),
    EndMatch(3.0),
]


@pytest.mark.parametrize("kind", list(READ_MODELS))
async def test_a_match_played_through_a_runtime_is_judged_live_rebuilt_and_rechecked(kind: str, tmp_path: Path) -> None:
    async with (
        READ_MODELS[kind](tmp_path) as read_model,
        SQLiteEventStore.open(":memory:") as store,
        Runtime(store, [game_match], handlers=[cheat_flags], read_model=read_model) as runtime,
    ):
        ref = runtime.ref(game_match, "m1")
        for command in COMMANDS:
            await ref.ask(command)
        with pytest.raises(MatchAlreadyEnded):
            await ref.ask(MovePlayer("ann", 7, 2, 4.0))
        await runtime.wait_for(cheat_flags, await store.last_position(), timeout=10)
        expected = [CheatFlag(*row) for row in CHEATED_FLAGS]
        assert await flags_of(read_model, "m1") == expected
        assert await cheaters(read_model) == {"ann": 4, "bob": 2}

        await runtime.rebuild(cheat_flags)  # the same rows again: flags are keyed by event
        assert await flags_of(read_model, "m1") == expected
        assert await runtime.parked() == []

        # Re-check the old match: under a looser limit, and as it stood after its first six events.
        assert [f.version for f in await recheck_match(store, "m1", max_speed=20.0)] == [6, 7, 10, 11, 13]
        assert [f.rule for f in await recheck_match(store, "m1", to_version=6)] == ["speed", "wall"]
        assert await recheck_match(store, "m1") == expected
        assert await flags_of(read_model, "m1") == expected  # the live flags are untouched
        at_six = await load_state(store, game_match, "m1", to_version=6)
        assert at_six.state.positions == {"ann": (6, 1), "bob": (8, 9)}
        assert at_six.state.status == "open"


def test_the_match_events_are_named_as_specific_past_facts() -> None:
    assert check_event_names([game_match]) == []


async def test_the_demo_prints_the_flags_and_the_recheck(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    await main(str(tmp_path))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "flags raised live:"
    assert [line.split()[3] for line in lines[1:4]] == ["speed", "wall", "phantom_hit"]
    assert lines[4] == "re-checked with a speed limit of 20 cells/s:"
    assert [line.split()[3] for line in lines[5:]] == ["wall", "phantom_hit"]
