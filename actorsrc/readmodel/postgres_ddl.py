"""The PostgreSQL read model's own tables (checkpoints, parked events, process-manager state), in its schema."""

from __future__ import annotations


def read_model_ddl(s: str) -> list[str]:
    """The statements creating schema `s` and the read model's tables in it, if they do not exist."""
    return [
        f'CREATE SCHEMA IF NOT EXISTS "{s}"',
        f'CREATE TABLE IF NOT EXISTS "{s}".checkpoints (name TEXT PRIMARY KEY, position BIGINT NOT NULL,'
        " updated_at BIGINT NOT NULL)",
        f'CREATE TABLE IF NOT EXISTS "{s}".parked (id BIGSERIAL PRIMARY KEY, handler TEXT NOT NULL,'
        " position BIGINT NOT NULL, stream_id TEXT NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,"
        " error TEXT NOT NULL, attempts INT NOT NULL, parked_at BIGINT NOT NULL, UNIQUE (handler, position))",
        f'CREATE TABLE IF NOT EXISTS "{s}".process_state (manager TEXT NOT NULL, key TEXT NOT NULL,'
        " state BYTEA NOT NULL, PRIMARY KEY (manager, key))",
        f'CREATE TABLE IF NOT EXISTS "{s}".process_settled (manager TEXT NOT NULL, command_id TEXT NOT NULL,'
        " outcome TEXT NOT NULL, PRIMARY KEY (manager, command_id))",
    ]
