"""The SQLite registry's birth marker: when this database file began recording legs."""

from __future__ import annotations

import sqlite3

from services.store.sqlite.database import SQLiteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS registry (
    name  TEXT PRIMARY KEY,
    value REAL NOT NULL
);
"""
_BORN = "INSERT OR IGNORE INTO registry (name, value) VALUES ('started_at', ?)"
_STARTED_AT = "SELECT value FROM registry WHERE name = 'started_at'"


def mark_birth(db: SQLiteDatabase, now: float) -> float:
    """Record `now` as the registry's start unless one is recorded; returns the start."""

    def born(conn: sqlite3.Connection) -> float:
        conn.execute(_BORN, (now,))
        return float(conn.execute(_STARTED_AT).fetchone()[0])

    return db.write(born)


def registry_age(db: SQLiteDatabase, now: float) -> float:
    """Seconds since the file's registry started; a file without a start starts now."""
    rows = db.read(_STARTED_AT)
    started = float(rows[0][0]) if rows else mark_birth(db, now)
    return max(0.0, now - started)
