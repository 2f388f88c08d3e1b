"""SQLite adapter of the message history: two tables in the leg store's file."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.legs.rules import Retention
from services.store.history import MAX_ENTRIES, HistoryEntry, history_expires_at
from services.store.sqlite.database import SQLiteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS message_history (
    call_sid        TEXT NOT NULL,
    entry_id        TEXT NOT NULL,
    at              REAL NOT NULL,
    direction       TEXT NOT NULL,
    leg_sid         TEXT NOT NULL,
    status          TEXT NOT NULL,
    size            INTEGER NOT NULL,
    sid             TEXT,
    leg             TEXT,
    identity        TEXT,
    idempotency_key TEXT,
    attempts        INTEGER,
    error           TEXT,
    content         TEXT,
    PRIMARY KEY (call_sid, entry_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_history_order ON message_history(call_sid, at, entry_id);
-- One row per call with a history: when the whole history may go (a call's legs go together).
CREATE TABLE IF NOT EXISTS message_history_calls (
    call_sid   TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_history_expiry ON message_history_calls(expires_at);
"""
COLUMNS = ("call_sid, entry_id, at, direction, leg_sid, status, size, sid, leg, identity, "
           "idempotency_key, attempts, error, content")
INSERT = f"INSERT OR IGNORE INTO message_history ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"  # noqa: S608
KEEP = """
INSERT INTO message_history_calls VALUES (?, ?)
ON CONFLICT(call_sid) DO UPDATE SET expires_at = excluded.expires_at
"""
FORGET_EXPIRED = """
DELETE FROM message_history WHERE call_sid = ? AND EXISTS (
    SELECT 1 FROM message_history_calls c WHERE c.call_sid = ? AND c.expires_at <= ?)
"""
# The oldest entries beyond the bound, through the (call_sid, at, entry_id) index.
TRIM = """
DELETE FROM message_history WHERE call_sid = ? AND entry_id IN (
    SELECT entry_id FROM message_history WHERE call_sid = ?
    ORDER BY at DESC, entry_id DESC LIMIT -1 OFFSET ?)
"""
SELECT = f"""
SELECT {COLUMNS} FROM message_history WHERE call_sid = ? AND EXISTS (
    SELECT 1 FROM message_history_calls c WHERE c.call_sid = ? AND c.expires_at > ?)
ORDER BY at, entry_id
"""  # noqa: S608
PURGE_EVERY_S = 60.0


def _row(entry: HistoryEntry) -> tuple[Any, ...]:
    error = json.dumps(dict(entry.error), separators=(",", ":")) if entry.error else None
    return (entry.call_sid, entry.id, entry.at, entry.direction, entry.leg_sid, entry.status,
            entry.size, entry.sid, entry.leg, entry.identity, entry.idempotency_key,
            entry.attempts, error, entry.content)


def _entry(row: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(call_sid=row[0], id=row[1], at=row[2], direction=row[3], leg_sid=row[4],
                        status=row[5], size=row[6], sid=row[7], leg=row[8], identity=row[9],
                        idempotency_key=row[10], attempts=row[11],
                        error=json.loads(row[12]) if row[12] else None, content=row[13])


class SQLiteMessageHistory:
    """Message histories in the SQLite file the legs live in."""

    def __init__(self, db: SQLiteDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        db.ensure_schema(SCHEMA)
        self.retention = retention
        self.clock = clock
        self._last_purge = 0.0

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries in one transaction; each call keeps its newest MAX_ENTRIES."""
        if not entries:
            return
        now = self.clock()
        until = history_expires_at(now, self.retention)

        def write(db: sqlite3.Connection) -> None:
            calls = list(dict.fromkeys(e.call_sid for e in entries))
            for call_sid in calls:  # a history past its time, not purged yet, starts afresh
                db.execute(FORGET_EXPIRED, (call_sid, call_sid, now))
            db.executemany(INSERT, [_row(e) for e in entries])
            for call_sid in calls:
                db.execute(KEEP, (call_sid, until))
                db.execute(TRIM, (call_sid, call_sid, MAX_ENTRIES))

        self.db.write(write)
        self._purge_now_and_then(now)

    def _purge_now_and_then(self, now: float) -> None:
        # On every kind of write, so that a history past its time (content may be personal
        # data) leaves the disk within a minute of the next write, whatever it is.
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()

    def update(self, call_sid: str, entry_id: str, status: str, *, attempts: int | None = None,
               error: Mapping[str, Any] | None = None) -> bool:
        """Set an entry's status, attempts and error; False when the call holds no such entry."""
        encoded = json.dumps(dict(error), separators=(",", ":")) if error else None
        now = self.clock()
        updated = self.db.write(lambda db: db.execute(
            "UPDATE message_history SET status = ?, attempts = ?, error = ? "
            "WHERE call_sid = ? AND entry_id = ? AND EXISTS (SELECT 1 FROM "
            "message_history_calls c WHERE c.call_sid = ? AND c.expires_at > ?)",
            (status, attempts, encoded, call_sid, entry_id, call_sid, now)).rowcount > 0)
        self._purge_now_and_then(now)
        return updated

    def call_ended(self, call_sid: str, ended_at: float) -> None:
        """Keep the call's history LEG_RETENTION_S from `ended_at`."""
        until, now = ended_at + self.retention.leg_retention_s, self.clock()
        # A history past its time stays gone, even before the purge deletes it.
        self.db.write(lambda db: db.execute(
            "UPDATE message_history_calls SET expires_at = ? WHERE call_sid = ? "
            "AND expires_at > ?", (until, call_sid, now)))
        self._purge_now_and_then(now)

    def entries(self, call_sid: str) -> list[HistoryEntry]:
        """The call's history, oldest first."""
        return [_entry(r) for r in self.db.read(SELECT, (call_sid, call_sid, self.clock()))]

    def purge(self) -> int:
        """Forget the histories of calls whose time has come; how many entries."""
        now = self.clock()
        self._last_purge = now

        def forget(db: sqlite3.Connection) -> int:
            gone = int(db.execute(
                "DELETE FROM message_history WHERE call_sid IN (SELECT call_sid FROM "
                "message_history_calls WHERE expires_at <= ?)", (now,)).rowcount)
            db.execute("DELETE FROM message_history_calls WHERE expires_at <= ?", (now,))
            return gone

        return self.db.write(forget)

    def close(self) -> None:
        """Close the database's idle connections."""
        self.db.close()
