"""The SQLite read model's statements on its own tables, run on its connection inside a transaction:
checkpoints, parked events, process-manager state and settled commands."""

from __future__ import annotations

import sqlite3

from actorsrc.readmodel.base import Checkpoint, CheckpointFencedError, CheckpointMovedError, fence_row
from actorsrc.sql.encoding import now_micros


def set_checkpoint(conn: sqlite3.Connection, name: str, position: int) -> None:
    conn.execute(
        "INSERT INTO actorsrc_checkpoints (name, position, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        (name, position, now_micros()),
    )


def read_checkpoint(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT position FROM actorsrc_checkpoints WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def claim_checkpoint(conn: sqlite3.Connection, name: str, fence: int) -> int:
    """Record `fence` as the checkpoint's owner's token (in the caller's transaction); its position."""
    held = read_checkpoint(conn, fence_row(name))
    if held > fence:
        raise CheckpointFencedError(name, fence, held)
    set_checkpoint(conn, fence_row(name), fence)
    return read_checkpoint(conn, name)


def move_checkpoint(conn: sqlite3.Connection, checkpoint: Checkpoint) -> None:
    if checkpoint.fence is not None:
        held = read_checkpoint(conn, fence_row(checkpoint.name))
        if held > checkpoint.fence:
            raise CheckpointFencedError(checkpoint.name, checkpoint.fence, held)
    if checkpoint.after is not None:
        found = read_checkpoint(conn, checkpoint.name)
        if found != checkpoint.after:
            raise CheckpointMovedError(checkpoint.name, checkpoint.after, found)
    set_checkpoint(conn, checkpoint.name, checkpoint.position)


def delete_parked(conn: sqlite3.Connection, parked_id: int) -> None:
    conn.execute("DELETE FROM actorsrc_parked WHERE id = ?", (parked_id,))


def load_process_state(conn: sqlite3.Connection, manager: str, key: str) -> bytes | None:
    row = conn.execute(
        "SELECT state FROM actorsrc_process_state WHERE manager = ? AND key = ?", (manager, key)
    ).fetchone()
    return bytes(row[0]) if row else None


def save_process_state(conn: sqlite3.Connection, manager: str, key: str, state: bytes) -> None:
    conn.execute(
        "INSERT INTO actorsrc_process_state (manager, key, state) VALUES (?, ?, ?)"
        " ON CONFLICT (manager, key) DO UPDATE SET state = excluded.state",
        (manager, key, state),
    )


def settled_commands(conn: sqlite3.Connection, manager: str, command_ids: list[str]) -> set[str]:
    """Which of `command_ids` were rejected or wrote nothing before: they must not be sent again."""
    found: set[str] = set()
    for start in range(0, len(command_ids), 500):
        chunk = command_ids[start : start + 500]
        rows = conn.execute(
            "SELECT command_id FROM actorsrc_process_settled WHERE manager = ?"
            f" AND command_id IN ({','.join('?' * len(chunk))})",
            (manager, *chunk),
        )
        found.update(row[0] for row in rows)
    return found


def record_settled(conn: sqlite3.Connection, manager: str, outcomes: dict[str, str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO actorsrc_process_settled (manager, command_id, outcome) VALUES (?, ?, ?)",
        [(manager, command_id, outcome) for command_id, outcome in outcomes.items()],
    )
