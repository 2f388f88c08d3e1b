"""PostgreSQL adapter of the message history: two tables beside the legs.

An add touches several rows of a call (its entries, the bound, the call's expiry): it runs in
one transaction holding an advisory lock on each call it touches, taken in SID order, so that
instances adding to one call take turns and never deadlock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.legs.rules import Retention
from services.store.history import MAX_ENTRIES, HistoryEntry, history_expires_at
from services.store.postgres.database import Connection, PostgresDatabase
from services.store.postgres.purge import PURGE_BATCH, Purges
from services.store.postgres.schema import LOCK_NAMESPACE

COLUMNS = ("call_sid, entry_id, at, direction, leg_sid, status, size, sid, leg, identity, "
           "idempotency_key, attempts, error, content")
INSERT = (f"INSERT INTO callrelay_message_history ({COLUMNS}) "  # noqa: S608
          "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
          "ON CONFLICT (call_sid, entry_id) DO NOTHING")
LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext('history:' || %s))"
KEEP = """
INSERT INTO callrelay_message_history_calls VALUES (%s, %s)
ON CONFLICT (call_sid) DO UPDATE SET expires_at = excluded.expires_at
"""
# A history past its time, not purged yet, starts afresh.
FORGET_EXPIRED = """
DELETE FROM callrelay_message_history WHERE call_sid = %(call)s AND EXISTS (
    SELECT 1 FROM callrelay_message_history_calls c
    WHERE c.call_sid = %(call)s AND c.expires_at <= %(now)s)
"""
# The oldest entries beyond the bound, through the (call_sid, at, entry_id) index.
TRIM = """
DELETE FROM callrelay_message_history WHERE call_sid = %(call)s AND entry_id IN (
    SELECT entry_id FROM callrelay_message_history WHERE call_sid = %(call)s
    ORDER BY at DESC, entry_id DESC OFFSET %(keep)s)
"""
SELECT = f"""
SELECT {COLUMNS} FROM callrelay_message_history WHERE call_sid = %(call)s AND EXISTS (
    SELECT 1 FROM callrelay_message_history_calls c
    WHERE c.call_sid = %(call)s AND c.expires_at > %(now)s)
ORDER BY at, entry_id
"""  # noqa: S608
PURGE = """
WITH gone AS (
    DELETE FROM callrelay_message_history_calls WHERE call_sid IN (
        SELECT call_sid FROM callrelay_message_history_calls WHERE expires_at <= %(now)s
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    AND expires_at <= %(now)s
    RETURNING call_sid
), entries AS (
    DELETE FROM callrelay_message_history
    WHERE call_sid IN (SELECT call_sid FROM gone) RETURNING 1
)
SELECT (SELECT count(*) FROM entries), (SELECT count(*) FROM gone)
"""


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


class PostgresMessageHistory:
    """Message histories in the PostgreSQL database the legs live in."""

    def __init__(self, db: PostgresDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        # On every kind of write, so that a history past its time (content may be personal
        # data) leaves the database within a minute of the next write, whatever it is.
        self._purges = Purges(self.purge)

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries in one transaction; each call keeps its newest MAX_ENTRIES."""
        if not entries:
            return
        now = self.clock()
        until = history_expires_at(now, self.retention)

        def write(conn: Connection) -> None:
            calls = sorted({e.call_sid for e in entries})
            for call_sid in calls:
                conn.execute(LOCK, (LOCK_NAMESPACE, call_sid))
                conn.execute(FORGET_EXPIRED, {"call": call_sid, "now": now})
            conn.cursor().executemany(INSERT, [_row(e) for e in entries])
            for call_sid in calls:
                conn.execute(KEEP, (call_sid, until))
                conn.execute(TRIM, {"call": call_sid, "keep": MAX_ENTRIES})

        self.db.transaction(write)
        self._purges.maybe(now)

    def update(self, call_sid: str, entry_id: str, status: str, *, attempts: int | None = None,
               error: Mapping[str, Any] | None = None) -> bool:
        """Set an entry's status, attempts and error; False when the call holds no such entry."""
        encoded = json.dumps(dict(error), separators=(",", ":")) if error else None
        now = self.clock()
        updated = self.db.count(
            "UPDATE callrelay_message_history SET status = %s, attempts = %s, error = %s "
            "WHERE call_sid = %s AND entry_id = %s AND EXISTS (SELECT 1 FROM "
            "callrelay_message_history_calls c WHERE c.call_sid = %s AND c.expires_at > %s)",
            (status, attempts, encoded, call_sid, entry_id, call_sid, now)) > 0
        self._purges.maybe(now)
        return updated

    def call_ended(self, call_sid: str, ended_at: float) -> None:
        """Keep the call's history LEG_RETENTION_S from `ended_at`."""
        until, now = ended_at + self.retention.leg_retention_s, self.clock()
        # A history past its time stays gone, even before the purge deletes it.
        self.db.count("UPDATE callrelay_message_history_calls SET expires_at = %s "
                      "WHERE call_sid = %s AND expires_at > %s", (until, call_sid, now))
        self._purges.maybe(now)

    def entries(self, call_sid: str) -> list[HistoryEntry]:
        """The call's history, oldest first."""
        return [_entry(r) for r in self.db.rows(SELECT, {"call": call_sid, "now": self.clock()})]

    def purge(self) -> int:
        """Forget the histories of calls whose time has come (a batch of calls); how many
        entries."""
        now = self.clock()
        [(entries, calls)] = self.db.rows(PURGE, {"now": now, "batch": PURGE_BATCH})
        self._purges.done(now, full=calls >= PURGE_BATCH)
        return int(entries)

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()
