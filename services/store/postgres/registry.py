"""The PostgreSQL registry's birth marker: when this database began recording legs.

One row, written by the first store that finds none: a new database (a first deploy, or one that
was lost and created again) starts its registry then.
"""

from __future__ import annotations

from services.store.postgres.database import Connection, PostgresDatabase

_BORN = ("INSERT INTO callrelay_registry (name, value) VALUES ('started_at', %s) "
         "ON CONFLICT (name) DO NOTHING")
_STARTED_AT = "SELECT value FROM callrelay_registry WHERE name = 'started_at'"


def mark_birth(db: PostgresDatabase, now: float) -> float:
    """Record `now` as the registry's start unless one is recorded; returns the start."""

    def born(conn: Connection) -> float:
        conn.execute(_BORN, (now,))
        # Its own statement: it sees the row whoever wrote it (the insert waited for them).
        row = conn.execute(_STARTED_AT).fetchone()
        return float(row[0]) if row else now

    return db.run(born)


def registry_age(db: PostgresDatabase, now: float) -> float:
    """Seconds since the database's registry started; a database without a start starts now."""
    rows = db.rows(_STARTED_AT)
    started = float(rows[0][0]) if rows else mark_birth(db, now)
    return max(0.0, now - started)
