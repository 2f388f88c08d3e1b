"""SQLite adapter of the conference store: two tables in the leg store's file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

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
from services.store.sqlite.database import SQLiteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS conferences (
    conference_sid TEXT PRIMARY KEY,
    friendly_name  TEXT,
    account_sid    TEXT,
    started_at     REAL,
    ended_at       REAL,
    updated_at     REAL NOT NULL,
    expires_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conferences_name ON conferences(friendly_name)
    WHERE friendly_name IS NOT NULL;
CREATE INDEX IF NOT EXISTS conferences_expiry ON conferences(expires_at);
CREATE TABLE IF NOT EXISTS conference_participants (
    conference_sid TEXT NOT NULL,
    call_sid       TEXT NOT NULL,
    joined_seq     INTEGER,
    joined_at      REAL,
    left_seq       INTEGER,
    left_at        REAL,
    PRIMARY KEY (conference_sid, call_sid)
) WITHOUT ROWID;
-- One small row per forgotten conference (ended, or expired without an end), kept far longer
-- than the conference (Retention.tombstone_s): a replayed callback cannot revive it.
CREATE TABLE IF NOT EXISTS conference_tombstones (
    conference_sid TEXT PRIMARY KEY,
    ended_at       REAL NOT NULL,
    expires_at     REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS conference_tombstones_expiry ON conference_tombstones(expires_at);
"""
COLUMNS = "conference_sid, friendly_name, account_sid, started_at, ended_at, updated_at"
UPSERT_CONFERENCE = """
INSERT INTO conferences VALUES (?,?,?,?,?,?,?) ON CONFLICT(conference_sid) DO UPDATE SET
    friendly_name = excluded.friendly_name, account_sid = excluded.account_sid,
    started_at = excluded.started_at, ended_at = excluded.ended_at,
    updated_at = excluded.updated_at, expires_at = excluded.expires_at
"""
UPSERT_PARTICIPANT = """
INSERT INTO conference_participants VALUES (?,?,?,?,?,?)
ON CONFLICT(conference_sid, call_sid) DO UPDATE SET
    joined_seq = excluded.joined_seq, joined_at = excluded.joined_at,
    left_seq = excluded.left_seq, left_at = excluded.left_at
"""
PARTICIPANTS = ("SELECT call_sid, joined_seq, joined_at, left_seq, left_at "
                "FROM conference_participants WHERE conference_sid = ?")
BURY = """
INSERT INTO conference_tombstones VALUES (?,?,?) ON CONFLICT(conference_sid) DO UPDATE SET
    ended_at = excluded.ended_at, expires_at = excluded.expires_at
"""
PURGE_EVERY_S = 60.0


def _mark(sequence: int | None, at: float | None) -> Mark | None:
    return Mark(sequence, at) if at is not None else None


def _conference(row: tuple, participant_rows: list[tuple]) -> Conference:
    participants = [Participant(r[0], _mark(r[1], r[2]), _mark(r[3], r[4]))
                    for r in participant_rows]
    return Conference(sid=row[0], friendly_name=row[1], account_sid=row[2], started_at=row[3],
                      ended_at=row[4], updated_at=row[5],
                      participants=tuple(sorted(participants, key=participant_order)))


def _participant_row(conference_sid: str, p: Participant) -> tuple:
    joined, left = p.joined, p.left
    return (conference_sid, p.call_sid, joined and joined.sequence, joined and joined.at,
            left and left.sequence, left and left.at)


class SQLiteConferenceStore:
    """Conferences and participants in the SQLite file the legs live in."""

    def __init__(self, db: SQLiteDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        db.ensure_schema(SCHEMA)
        self.retention = retention
        self.clock = clock
        self._last_purge = 0.0

    def apply(self, event: ConferenceEvent) -> Conference:
        """Atomically fold a conference callback into its conference and persist the result."""
        now = self.clock()
        sid = event.conference_sid

        def fold_in(db: sqlite3.Connection) -> Conference:
            current, buried = self._load(db, sid, now)
            if buried is not None:
                return buried  # forgotten: nothing is recorded
            conference = fold(current, event, now)
            if conference is not current:
                if current is None:  # participants of a forgotten conference of this SID
                    db.execute("DELETE FROM conference_participants WHERE conference_sid = ?",
                               (sid,))
                db.execute(UPSERT_CONFERENCE, (
                    sid, conference.friendly_name, conference.account_sid,
                    conference.started_at, conference.ended_at, conference.updated_at,
                    expires_at(conference, self.retention)))
                old = set(current.participants) if current else set()
                db.executemany(UPSERT_PARTICIPANT, [_participant_row(sid, p) for p in
                                                    conference.participants if p not in old])
                if conference.is_ended:
                    # In the same transaction: whenever the row goes, this SID stays ended.
                    db.execute(BURY, (sid, *tombstone(conference, self.retention)))
            return conference

        conference = self.db.write(fold_in)
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()
        return conference

    def _load(self, db: sqlite3.Connection, sid: str,
              now: float) -> tuple[Conference | None, Conference | None]:
        """(the retained conference, or the one its tombstone describes once forgotten)."""
        row = db.execute(f"SELECT {COLUMNS}, expires_at FROM conferences "  # noqa: S608
                         "WHERE conference_sid = ?", (sid,)).fetchone()
        if row is not None:
            conference = _conference(row, db.execute(PARTICIPANTS, (sid,)).fetchall())
            if row[-1] > now:
                return conference, None
            # Forgotten but not purged yet: answered from the tombstone purge will write.
            ended_at, until = tombstone(conference, self.retention)
            return None, (from_tombstone(sid, ended_at) if until > now else None)
        tomb = db.execute("SELECT ended_at FROM conference_tombstones "
                          "WHERE conference_sid = ? AND expires_at > ?", (sid, now)).fetchone()
        return None, (from_tombstone(sid, tomb[0]) if tomb else None)

    def _read(self, where: str, args: tuple) -> Conference | None:
        # `where` is one of this module's literals, never caller input.
        rows = self.db.read(f"SELECT {COLUMNS} FROM conferences WHERE {where}", args)  # noqa: S608
        if not rows:
            return None
        # A second read may see a newer participant set than the row: harmless for a reader.
        return _conference(rows[0], self.db.read(PARTICIPANTS, (rows[0][0],)))

    def get(self, conference_sid: str) -> Conference | None:
        """One conference by CF SID, with its participants, while retained."""
        return self._read("conference_sid = ? AND expires_at > ?",
                          (conference_sid, self.clock()))

    def find(self, friendly_name: str) -> Conference | None:
        """The conference of that name: the latest not ended, else the one changed last."""
        return self._read("friendly_name = ? AND expires_at > ? "
                          "ORDER BY ended_at IS NOT NULL, updated_at DESC LIMIT 1",
                          (friendly_name, self.clock()))

    def purge(self) -> int:
        """Forget conferences (and their participants) whose retention has run out."""
        now = self.clock()
        self._last_purge = now

        def forget(db: sqlite3.Connection) -> int:
            # A conference whose end was never reported is buried as it goes (the rule's
            # `tombstone`); ended ones have theirs already.
            db.execute("INSERT OR IGNORE INTO conference_tombstones SELECT conference_sid, "
                       "coalesce(ended_at, expires_at), expires_at + ? FROM conferences "
                       "WHERE expires_at <= ? AND ended_at IS NULL",
                       (self.retention.tombstone_s, now))
            db.execute("DELETE FROM conference_tombstones WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM conference_participants WHERE conference_sid IN "
                       "(SELECT conference_sid FROM conferences WHERE expires_at <= ?)", (now,))
            return int(db.execute("DELETE FROM conferences WHERE expires_at <= ?",
                                  (now,)).rowcount)

        return self.db.write(forget)

    def close(self) -> None:
        """Close the database's idle connections."""
        self.db.close()
