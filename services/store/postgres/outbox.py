"""PostgreSQL adapter of the outbox port, for several instances: every operation is one statement.

Leasing is the one operation that several workers race on: `FOR UPDATE SKIP LOCKED` makes each
head event go to one worker (the others skip it, or see it leased once its lease is committed),
and only the oldest pending event of a stream is ever a candidate (but for events set aside,
which no longer hold their stream), so a stream's events go one at a time, in order, across
every instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.store.outbox import DEAD_S, SEEN_S, Backlog, DeadEvent, OutboxEvent
from services.store.postgres.database import Connection, PostgresDatabase
from services.store.postgres.purge import PURGE_BATCH, Purges

LEASE = """
WITH heads AS (
    SELECT id FROM callrelay_outbox
    -- The head of each stream (among the events that hold it), and events set aside.
    WHERE (seq IN (SELECT min(seq) FROM callrelay_outbox WHERE state = 'pending' AND NOT aside
                   GROUP BY stream) OR aside)
      AND state = 'pending' AND due_at <= %(now)s
    ORDER BY due_at, seq LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE callrelay_outbox o SET lease_owner = %(owner)s, due_at = %(until)s
FROM heads WHERE o.id = heads.id
RETURNING o.id, o.stream, o.body, o.attempts, o.created_at, o.seq
"""
# Done ids are kept (without their body) for SEEN_S to recognise duplicates, dead events for
# DEAD_S; a run-out lease is only a row to drop.
PURGE = """
DELETE FROM callrelay_outbox WHERE seq IN (
    SELECT seq FROM callrelay_outbox
    WHERE (state = 'done' AND closed_at <= %(seen)s) OR (state = 'dead' AND closed_at <= %(dead)s)
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""
PURGE_LEASES = """
DELETE FROM callrelay_leases WHERE name IN (
    SELECT name FROM callrelay_leases WHERE expires_at <= %(now)s
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
AND expires_at <= %(now)s
"""


class PostgresOutbox:
    """Outbox and named leases in the PostgreSQL database the legs use, shared by every worker."""

    def __init__(self, db: PostgresDatabase, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._purges = Purges(self.purge)

    def enqueue(self, event: OutboxEvent) -> bool:
        """Queue `event` unless its id is already known; True when it was queued now."""
        now = self.clock()
        return self.db.count(
            "INSERT INTO callrelay_outbox (id, stream, body, due_at, created_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (event.id, event.stream, event.body, now, event.created_at or now)) == 1

    def lease(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxEvent]:
        """Lease the due head event of up to `limit` streams to `owner` for `lease_s`."""
        now = self.clock()
        self._purges.maybe(now)
        rows = self.db.rows(LEASE, {"now": now, "until": now + lease_s, "owner": owner,
                                    "limit": limit})
        rows.sort(key=lambda r: r[5])
        return [OutboxEvent(id=r[0], stream=r[1], body=r[2], attempts=r[3], created_at=r[4])
                for r in rows]

    def ack(self, event_id: str) -> None:
        """The backend accepted the event: keep only its id, to recognise duplicates."""
        self.db.count(
            "UPDATE callrelay_outbox SET state = 'done', body = '', lease_owner = NULL, "
            "closed_at = %s WHERE id = %s AND state = 'pending'", (self.clock(), event_id))

    def retry_at(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and hold the event (and its stream) until `at`."""
        self.db.count(
            "UPDATE callrelay_outbox SET attempts = attempts + 1, due_at = %s, last_error = %s, "
            "lease_owner = NULL WHERE id = %s AND lease_owner = %s AND state = 'pending'",
            (at, error, event_id, owner))

    def set_aside(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and retry the event at `at` on its own; its stream's next
        event may go now."""
        self.db.count(
            "UPDATE callrelay_outbox SET attempts = attempts + 1, due_at = %s, last_error = %s, "
            "lease_owner = NULL, aside = true WHERE id = %s AND lease_owner = %s "
            "AND state = 'pending'", (at, error, event_id, owner))

    def bury(self, event_id: str, owner: str, error: str) -> None:
        """Move the event to the dead list; its stream's next event may go."""
        self.db.count(
            "UPDATE callrelay_outbox SET state = 'dead', attempts = attempts + 1, "
            "last_error = %s, lease_owner = NULL, closed_at = %s WHERE id = %s "
            "AND lease_owner = %s AND state = 'pending'", (error, self.clock(), event_id, owner))

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Dead events, newest first."""
        rows = self.db.rows(
            "SELECT id, stream, body, attempts, created_at, closed_at, last_error "
            "FROM callrelay_outbox WHERE state = 'dead' ORDER BY closed_at DESC, seq DESC "
            "LIMIT %s", (limit,))
        return [DeadEvent(*row) for row in rows]

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again with a fresh attempt count; False when it is not dead."""
        return self.db.transaction(lambda conn: self._requeue(conn, event_id)) == 1

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first (a call's events keep their order);
        returns how many."""
        return self.db.transaction(lambda conn: self._requeue(conn, None))

    def _requeue(self, conn: Connection, event_id: str | None) -> int:
        """Queue the dead event `event_id` again, or every dead event when it is None."""
        ids = [row[0] for row in conn.execute(
            "SELECT id FROM callrelay_outbox WHERE state = 'dead' "
            "AND (%(id)s::text IS NULL OR id = %(id)s) ORDER BY created_at, seq FOR UPDATE",
            {"id": event_id}).fetchall()]
        # One at a time, oldest first: each takes a new `seq`, behind the events already
        # pending on its stream, so it never overtakes one being delivered.
        now = self.clock()
        conn.cursor().executemany(
            "UPDATE callrelay_outbox SET state = 'pending', attempts = 0, last_error = NULL, "
            "closed_at = NULL, lease_owner = NULL, aside = false, due_at = %s, "
            "seq = nextval(pg_get_serial_sequence('callrelay_outbox', 'seq')) "
            "WHERE id = %s AND state = 'dead'", [(now, i) for i in ids])
        return len(ids)

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good, its id still known for SEEN_S (a duplicate is not
        queued again); False when it is not dead."""
        # Kept without its body as a closed row, like a delivered one, to recognise
        # duplicates until the purge forgets it.
        return self.db.count(
            "UPDATE callrelay_outbox SET state = 'done', body = '', closed_at = %s "
            "WHERE id = %s AND state = 'dead'", (self.clock(), event_id)) == 1

    def backlog(self) -> Backlog:
        """Pending and dead events, each counted on its partial index."""
        [(pending, dead)] = self.db.rows(
            "SELECT (SELECT count(*) FROM callrelay_outbox WHERE state = 'pending'), "
            # `state <> 'pending'` is callrelay_outbox_closed's condition: the index serves.
            "(SELECT count(*) FROM callrelay_outbox WHERE state = 'dead' AND state <> 'pending')")
        return Backlog(pending=pending, dead=dead)

    def take_lease(self, name: str, lease_s: float) -> bool:
        """Take `name` for `lease_s` unless someone holds it and it has not run out."""
        now = self.clock()
        return self.db.count(
            "INSERT INTO callrelay_leases (name, expires_at) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at "
            "WHERE callrelay_leases.expires_at <= %s", (name, now + lease_s, now)) == 1

    def renew_lease(self, name: str, lease_s: float) -> None:
        """Hold a taken lease for `lease_s` from now."""
        self.db.count(
            "INSERT INTO callrelay_leases (name, expires_at) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET expires_at = excluded.expires_at",
            (name, self.clock() + lease_s))

    def release_lease(self, name: str) -> None:
        """Give a lease up, so it can be taken again."""
        self.db.count("DELETE FROM callrelay_leases WHERE name = %s", (name,))

    def purge(self) -> None:
        """Forget delivered ids after SEEN_S, dead events after DEAD_S, run-out leases; bounded."""
        now = self.clock()
        args = {"now": now, "seen": now - SEEN_S, "dead": now - DEAD_S, "batch": PURGE_BATCH}

        def forget(conn: Connection) -> int:
            gone = conn.execute(PURGE, args).rowcount
            conn.execute(PURGE_LEASES, args)
            return gone

        self._purges.done(now, full=self.db.run(forget) >= PURGE_BATCH)

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()
