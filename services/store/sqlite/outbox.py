"""SQLite adapter of the outbox port: tables beside the legs, in the same WAL-mode file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from services.store.outbox import DEAD_S, SEEN_S, Backlog, DeadEvent, OutboxEvent
from services.store.sqlite.database import SQLiteDatabase

# `due_at` is when the row may next be leased: now for a new event, the end of the lease
# while a worker delivers it, the backoff's end after a failure. `state` is pending, done
# (kept, without its body, to recognise duplicates) or dead. `aside` (added by ASIDE below)
# is 1 for an event set aside: it no longer holds its stream.
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    stream      TEXT NOT NULL,
    body        TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_at      REAL NOT NULL,
    lease_owner TEXT,
    last_error  TEXT,
    created_at  REAL NOT NULL,
    closed_at   REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(stream, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_closed ON outbox(state, closed_at) WHERE state != 'pending';
CREATE TABLE IF NOT EXISTS once_claims (name TEXT PRIMARY KEY, expires_at REAL NOT NULL);
"""
# Files made before events could be set aside lack the column: added once, in a write
# transaction, so that workers starting together add it once.
ASIDE = """
ALTER TABLE outbox ADD COLUMN aside INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS outbox_aside ON outbox(due_at) WHERE state = 'pending' AND aside = 1;
"""
# The named leases live in `once_claims`, the table's name from before they were called
# leases: renaming it would need a migration of existing files for no change in behaviour.
PURGE_EVERY_S = 60.0


class SQLiteOutbox:
    """Outbox and named leases in the SQLite file the leg store uses, shared by every worker."""

    def __init__(self, db: SQLiteDatabase, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        db.ensure_schema(SCHEMA)
        db.write(_add_aside)
        self.clock = clock
        self._last_purge = 0.0

    def enqueue(self, event: OutboxEvent) -> bool:
        """Queue `event` unless its id is already known; True when it was queued now."""
        now = self.clock()
        return self.db.write(lambda db: db.execute(
            "INSERT OR IGNORE INTO outbox (id, stream, body, due_at, created_at) "
            "VALUES (?, ?, ?, ?, ?)", (event.id, event.stream, event.body, now,
                                       event.created_at or now)).rowcount == 1)

    def lease(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxEvent]:
        """Lease the due head event of up to `limit` streams to `owner` for `lease_s`."""
        now = self.clock()
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()

        def lease_heads(db: sqlite3.Connection) -> list[tuple]:
            # The head of each stream (among the events that hold it), and events set aside.
            rows = db.execute(
                "SELECT id, stream, body, attempts, created_at FROM outbox WHERE (seq IN "
                "(SELECT min(seq) FROM outbox WHERE state = 'pending' AND aside = 0 "
                "GROUP BY stream) OR (state = 'pending' AND aside = 1)) "
                "AND due_at <= ? ORDER BY due_at, seq LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE outbox SET lease_owner = ?, due_at = ? WHERE id = ?",
                           [(owner, now + lease_s, row[0]) for row in rows])
            return rows

        rows = self.db.write(lease_heads)
        return [OutboxEvent(id=r[0], stream=r[1], body=r[2], attempts=r[3], created_at=r[4])
                for r in rows]

    def ack(self, event_id: str) -> None:
        """The backend accepted the event: keep only its id, to recognise duplicates."""
        now = self.clock()
        self.db.write(lambda db: db.execute(
            "UPDATE outbox SET state = 'done', body = '', lease_owner = NULL, "
            "closed_at = ? WHERE id = ? AND state = 'pending'", (now, event_id)))

    def retry_at(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and hold the event (and its stream) until `at`."""
        self.db.write(lambda db: db.execute(
            "UPDATE outbox SET attempts = attempts + 1, due_at = ?, last_error = ?, "
            "lease_owner = NULL WHERE id = ? AND lease_owner = ? AND state = 'pending'",
            (at, error, event_id, owner)))

    def set_aside(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and retry the event at `at` on its own; its stream's next
        event may go now."""
        self.db.write(lambda db: db.execute(
            "UPDATE outbox SET attempts = attempts + 1, due_at = ?, last_error = ?, "
            "lease_owner = NULL, aside = 1 WHERE id = ? AND lease_owner = ? "
            "AND state = 'pending'", (at, error, event_id, owner)))

    def bury(self, event_id: str, owner: str, error: str) -> None:
        """Move the event to the dead list; its stream's next event may go."""
        now = self.clock()
        self.db.write(lambda db: db.execute(
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?, "
            "lease_owner = NULL, closed_at = ? WHERE id = ? AND lease_owner = ? "
            "AND state = 'pending'", (error, now, event_id, owner)))

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Dead events, newest first."""
        rows = self.db.read(
            "SELECT id, stream, body, attempts, created_at, closed_at, last_error "
            "FROM outbox WHERE state = 'dead' ORDER BY closed_at DESC, seq DESC LIMIT ?",
            (limit,))
        return [DeadEvent(*row) for row in rows]

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again with a fresh attempt count; False when it is not dead."""
        return self.db.write(lambda db: self._requeue(db, event_id) == 1)

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first (a call's events keep their order);
        returns how many."""
        return self.db.write(lambda db: self._requeue(db, None))

    def _requeue(self, db: sqlite3.Connection, event_id: str | None) -> int:
        """Queue the dead event `event_id` again, or every dead event when it is None."""
        now = self.clock()
        rows = db.execute("SELECT id, stream, body, created_at FROM outbox WHERE state = 'dead' "
                          "AND (?1 IS NULL OR id = ?1) ORDER BY created_at, seq",
                          (event_id,)).fetchall()
        # Deleted and inserted again: a new `seq` puts each behind the events already pending
        # on its stream, so it never overtakes one being delivered.
        db.executemany("DELETE FROM outbox WHERE id = ?", [(row[0],) for row in rows])
        db.executemany("INSERT INTO outbox (id, stream, body, due_at, created_at) "
                       "VALUES (?, ?, ?, ?, ?)",
                       [(row[0], row[1], row[2], now, row[3]) for row in rows])
        return len(rows)

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good, its id still known for SEEN_S (a duplicate is not
        queued again); False when it is not dead."""
        now = self.clock()
        # Kept without its body as a closed row, like a delivered one, to recognise
        # duplicates until the purge forgets it.
        return self.db.write(lambda db: db.execute(
            "UPDATE outbox SET state = 'done', body = '', closed_at = ? "
            "WHERE id = ? AND state = 'dead'", (now, event_id)).rowcount == 1)

    def backlog(self) -> Backlog:
        """Pending and dead events, each counted on its partial index."""
        [(pending, dead)] = self.db.read(
            "SELECT (SELECT count(*) FROM outbox WHERE state = 'pending'), "
            # `state != 'pending'` is outbox_closed's condition: it lets SQLite use that index.
            "(SELECT count(*) FROM outbox WHERE state = 'dead' AND state != 'pending')")
        return Backlog(pending=pending, dead=dead)

    def take_lease(self, name: str, lease_s: float) -> bool:
        """Take `name` for `lease_s` unless someone holds it and it has not run out."""
        now = self.clock()
        return self.db.write(lambda db: db.execute(
            "INSERT INTO once_claims (name, expires_at) VALUES (?, ?) ON CONFLICT(name) "
            "DO UPDATE SET expires_at = excluded.expires_at WHERE expires_at <= ?",
            (name, now + lease_s, now)).rowcount == 1)

    def renew_lease(self, name: str, lease_s: float) -> None:
        """Hold a taken lease for `lease_s` from now."""
        until = self.clock() + lease_s
        self.db.write(lambda db: db.execute("INSERT OR REPLACE INTO once_claims VALUES (?, ?)",
                                            (name, until)))

    def release_lease(self, name: str) -> None:
        """Give a lease up, so it can be taken again."""
        self.db.write(lambda db: db.execute("DELETE FROM once_claims WHERE name = ?", (name,)))

    def purge(self) -> None:
        """Forget delivered ids after SEEN_S, dead events after DEAD_S, run-out leases."""
        now = self.clock()
        self._last_purge = now

        def forget(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM outbox WHERE (state = 'done' AND closed_at <= ?) "
                       "OR (state = 'dead' AND closed_at <= ?)", (now - SEEN_S, now - DEAD_S))
            db.execute("DELETE FROM once_claims WHERE expires_at <= ?", (now,))

        self.db.write(forget)

    def close(self) -> None:
        """Close the database's idle connections."""
        self.db.close()


def _add_aside(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
    if "aside" not in columns:
        for statement in filter(str.strip, ASIDE.split(";")):
            db.execute(statement)
