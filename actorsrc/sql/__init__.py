"""Database plumbing shared by the write side (`actorsrc.store`) and the read side
(`actorsrc.readmodel`), so that neither imports the other's internals.

- `actorsrc.sql.encoding`: how values sit in SQL columns (times as integer microseconds, the 64-bit
  integer bound);
- `actorsrc.sql.sqlite_thread`: one hop onto an aiosqlite connection's thread;
- `actorsrc.sql.private_files`: database files readable by their owner only;
- `actorsrc.sql.postgres`: PostgreSQL schema names and the connection type.

Nothing is imported here, so importing one of them loads no other database driver.
"""
