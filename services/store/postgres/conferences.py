"""PostgreSQL adapter of the conference store: two tables beside the legs.

A conference callback touches the conference row and one participant, and whether the
conference changed depends on both: it is folded in Python (`fold`), in a transaction that
holds an advisory lock on the conference's SID, so callbacks of one conference take turns
across every instance while other conferences go on in parallel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from services.legs.conferences import (
    Conference,
    ConferenceEvent,
    Mark,
    Participant,
    expires_at,
    fold,
    from_tombstone,
    participant_order,
    tombstone,
)
from services.legs.rules import Retention
from services.store.postgres.database import Connection, PostgresDatabase
from services.store.postgres.purge import PURGE_BATCH, Purges, bounded_delete
from services.store.postgres.schema import LOCK_NAMESPACE

COLUMNS = "conference_sid, friendly_name, account_sid, started_at, ended_at, updated_at"
UPSERT_CONFERENCE = """
INSERT INTO callrelay_conferences VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (conference_sid) DO UPDATE SET
    friendly_name = excluded.friendly_name, account_sid = excluded.account_sid,
    started_at = excluded.started_at, ended_at = excluded.ended_at,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at
"""
UPSERT_PARTICIPANT = """
INSERT INTO callrelay_conference_participants VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (conference_sid, call_sid) DO UPDATE SET
    joined_seq = excluded.joined_seq, joined_at = excluded.joined_at,
    left_seq = excluded.left_seq, left_at = excluded.left_at
"""
PARTICIPANTS = ("SELECT call_sid, joined_seq, joined_at, left_seq, left_at "
                "FROM callrelay_conference_participants WHERE conference_sid = %s")
BURY = """
INSERT INTO callrelay_conference_tombstones VALUES (%s, %s, %s)
ON CONFLICT (conference_sid) DO UPDATE SET
    ended_at = excluded.ended_at, expires_at = excluded.expires_at
"""
# The per-conference lock: (namespace, hashtext of the SID). Two SIDs that share a hash only
# take turns, which costs nothing but a short wait.
LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
# Expired conferences go a batch at a time with their participants; one whose end was never
# reported leaves its tombstone as it goes (ended ones have theirs already), unless that ran out.
PURGE = """
WITH gone AS (
    DELETE FROM callrelay_conferences WHERE conference_sid IN (
        SELECT conference_sid FROM callrelay_conferences WHERE expires_at <= %(now)s
        -- A conference a callback is folding now is skipped (it may be coming back); and
        -- the callback waits for the purge, not the other way round: no deadlock.
        AND pg_try_advisory_xact_lock(%(namespace)s, hashtext(conference_sid))
        LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    AND expires_at <= %(now)s
    RETURNING conference_sid, ended_at, expires_at
), participants AS (
    DELETE FROM callrelay_conference_participants
    WHERE conference_sid IN (SELECT conference_sid FROM gone)
), buried AS (
    INSERT INTO callrelay_conference_tombstones
    SELECT conference_sid, expires_at, expires_at + %(tombstone_s)s FROM gone
    WHERE ended_at IS NULL AND expires_at + %(tombstone_s)s > %(now)s
    ON CONFLICT (conference_sid) DO NOTHING
)
SELECT count(*) FROM gone
"""


def _mark(sequence: int | None, at: float | None) -> Mark | None:
    return Mark(sequence, at) if at is not None else None


def _conference(row: tuple[Any, ...], participant_rows: list[tuple[Any, ...]]) -> Conference:
    participants = [Participant(r[0], _mark(r[1], r[2]), _mark(r[3], r[4]))
                    for r in participant_rows]
    return Conference(sid=row[0], friendly_name=row[1], account_sid=row[2], started_at=row[3],
                      ended_at=row[4], updated_at=row[5],
                      participants=tuple(sorted(participants, key=participant_order)))


def _participant_row(conference_sid: str, p: Participant) -> tuple[Any, ...]:
    joined, left = p.joined, p.left
    return (conference_sid, p.call_sid, joined and joined.sequence, joined and joined.at,
            left and left.sequence, left and left.at)


class PostgresConferenceStore:
    """Conferences and participants in the PostgreSQL database the legs live in."""

    def __init__(self, db: PostgresDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self._purges = Purges(self.purge)

    def apply(self, event: ConferenceEvent) -> Conference:
        """Atomically fold a conference callback into its conference and persist the result."""
        now = self.clock()
        sid = event.conference_sid

        def fold_in(conn: Connection) -> Conference:
            conn.execute(LOCK, (LOCK_NAMESPACE, sid))
            current, buried = self._load(conn, sid, now)
            if buried is not None:
                return buried  # forgotten: nothing is recorded
            conference = fold(current, event, now)
            if conference is not current:
                if current is None:  # participants of a forgotten conference of this SID
                    conn.execute("DELETE FROM callrelay_conference_participants "
                                 "WHERE conference_sid = %s", (sid,))
                conn.execute(UPSERT_CONFERENCE, (
                    sid, conference.friendly_name, conference.account_sid,
                    conference.started_at, conference.ended_at, conference.updated_at,
                    expires_at(conference, self.retention)))
                old = set(current.participants) if current else set()
                changed = [_participant_row(sid, p) for p in conference.participants
                           if p not in old]
                if changed:
                    conn.cursor().executemany(UPSERT_PARTICIPANT, changed)
                if conference.is_ended:
                    # In the same transaction: whenever the row goes, this SID stays ended.
                    conn.execute(BURY, (sid, *tombstone(conference, self.retention)))
            return conference

        conference = self.db.transaction(fold_in)
        self._purges.maybe(now)
        return conference

    def _load(self, conn: Connection, sid: str,
              now: float) -> tuple[Conference | None, Conference | None]:
        """(the retained conference, or the one its tombstone describes once forgotten)."""
        row = conn.execute(f"SELECT {COLUMNS}, expires_at FROM callrelay_conferences "  # noqa: S608
                           "WHERE conference_sid = %s", (sid,)).fetchone()
        if row is not None:
            conference = _conference(row, conn.execute(PARTICIPANTS, (sid,)).fetchall())
            if row[-1] > now:
                return conference, None
            # Forgotten but not purged yet: answered from the tombstone the purge will write.
            ended_at, until = tombstone(conference, self.retention)
            return None, (from_tombstone(sid, ended_at) if until > now else None)
        tomb = conn.execute("SELECT ended_at FROM callrelay_conference_tombstones "
                            "WHERE conference_sid = %s AND expires_at > %s", (sid, now)).fetchone()
        return None, (from_tombstone(sid, tomb[0]) if tomb else None)

    def _read(self, where: str, args: tuple[Any, ...]) -> Conference | None:
        def read(conn: Connection) -> Conference | None:
            # `where` is one of this module's literals, never caller input.
            row = conn.execute(f"SELECT {COLUMNS} FROM callrelay_conferences "  # noqa: S608
                               f"WHERE {where}", args).fetchone()
            if row is None:
                return None
            # A second read may see a newer participant set than the row: harmless for a reader.
            return _conference(row, conn.execute(PARTICIPANTS, (row[0],)).fetchall())

        return self.db.run(read)

    def get(self, conference_sid: str) -> Conference | None:
        """One conference by CF SID, with its participants, while retained."""
        return self._read("conference_sid = %s AND expires_at > %s",
                          (conference_sid, self.clock()))

    def find(self, friendly_name: str) -> Conference | None:
        """The conference of that name: the latest not ended, else the one changed last."""
        return self._read("friendly_name = %s AND expires_at > %s "
                          "ORDER BY ended_at IS NOT NULL, updated_at DESC LIMIT 1",
                          (friendly_name, self.clock()))

    def purge(self) -> int:
        """Forget conferences (and their participants) whose retention has run out, and
        tombstones whose time has come; bounded."""
        now = self.clock()
        args = {"now": now, "batch": PURGE_BATCH, "namespace": LOCK_NAMESPACE,
                "tombstone_s": self.retention.tombstone_s}

        def forget(conn: Connection) -> int:
            row = conn.execute(PURGE, args).fetchone()
            bounded_delete(conn, "callrelay_conference_tombstones", "conference_sid", now)
            return int(row[0]) if row else 0

        forgotten = self.db.run(forget)
        self._purges.done(now, full=forgotten >= PURGE_BATCH)
        return forgotten

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()
