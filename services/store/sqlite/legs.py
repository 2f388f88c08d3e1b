"""SQLite adapter of the store port: one file on disk, shared by every worker of one machine."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from services.legs.model import Leg, LegEvent
from services.legs.rules import (
    EXPIRED_STATUS,
    Retention,
    call_order,
    expires_at,
    from_tombstone,
    merge,
    tombstone,
)
from services.store.sqlite import registry
from services.store.sqlite.database import SQLiteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS legs (
    call_sid    TEXT PRIMARY KEY,
    parent_sid  TEXT,
    account_sid TEXT,
    from_addr   TEXT,
    to_addr     TEXT,
    direction   TEXT,
    status      TEXT NOT NULL,
    identity    TEXT,
    updated_at  REAL NOT NULL,
    ended_at    REAL,
    expires_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS legs_parent ON legs(parent_sid) WHERE parent_sid IS NOT NULL;
CREATE INDEX IF NOT EXISTS legs_identity ON legs(identity) WHERE identity IS NOT NULL;
CREATE INDEX IF NOT EXISTS legs_open ON legs(ended_at) WHERE ended_at IS NULL;
CREATE INDEX IF NOT EXISTS legs_expiry ON legs(expires_at);
-- One small row per forgotten leg (ended, or expired without an end), kept far longer than the
-- leg's own row (Retention.tombstone_s): the SID still reads as ended, so a replayed callback
-- cannot revive it.
CREATE TABLE IF NOT EXISTS tombstones (
    call_sid   TEXT PRIMARY KEY,
    status     TEXT NOT NULL,
    ended_at   REAL NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tombstones_expiry ON tombstones(expires_at);
"""
COLUMNS = ("call_sid, parent_sid, account_sid, from_addr, to_addr, direction, status, "
           "identity, updated_at, ended_at")
# An update in place: INSERT OR REPLACE deleted the row and its index entries, then inserted
# them again, for the five callbacks in six that update a leg already stored.
UPSERT = """
INSERT INTO legs VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(call_sid) DO UPDATE SET
    parent_sid = excluded.parent_sid, account_sid = excluded.account_sid,
    from_addr = excluded.from_addr, to_addr = excluded.to_addr, direction = excluded.direction,
    status = excluded.status, identity = excluded.identity, updated_at = excluded.updated_at,
    ended_at = excluded.ended_at, expires_at = excluded.expires_at
"""
BURY = """
INSERT INTO tombstones VALUES (?,?,?,?) ON CONFLICT(call_sid) DO UPDATE SET
    status = excluded.status, ended_at = excluded.ended_at, expires_at = excluded.expires_at
"""
UPDATE_STATUS = ("UPDATE legs SET status = ?, updated_at = ?, ended_at = ?, expires_at = ? "
                 "WHERE call_sid = ?")
PURGE_EVERY_S = 60.0


def _leg(row: tuple) -> Leg:
    return Leg(call_sid=row[0], parent_sid=row[1], account_sid=row[2], from_=row[3], to=row[4],
               direction=row[5], status=row[6], identity=row[7], updated_at=row[8],
               ended_at=row[9])


def _same_call(a: Leg, b: Leg) -> bool:
    """True when two versions of a leg differ at most in status and times."""
    return (a.parent_sid, a.account_sid, a.from_, a.to, a.direction, a.identity) == (
        b.parent_sid, b.account_sid, b.from_, b.to, b.direction, b.identity)


class SQLiteStore:
    """Legs in one SQLite file, in WAL mode, shared by every worker of the machine."""

    def __init__(self, db: SQLiteDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        db.ensure_schema(SCHEMA)
        db.ensure_schema(registry.SCHEMA)
        self.retention = retention
        self.clock = clock
        # A new file (a first start, or a restart that lost the disk) starts the registry now.
        registry.mark_birth(db, clock())
        self._last_purge = 0.0

    def _select(self, where: str, args: tuple) -> list[Leg]:
        # `where` is one of this module's literals, never caller input.
        rows = self.db.read(f"SELECT {COLUMNS} FROM legs WHERE ({where}) AND expires_at > ?",  # noqa: S608
                            (*args, self.clock()))
        return [_leg(r) for r in rows]

    def apply(self, event: LegEvent) -> Leg:
        """Atomically fold an event into its leg and persist the result.

        The SID of an ended leg past its retention is a tombstone: the ended leg it
        describes is returned and nothing is recorded.
        """
        now = self.clock()
        leg = self.db.write(lambda db: self._apply(db, event, now))
        if now - self._last_purge > PURGE_EVERY_S:
            self.purge()
        return leg

    def _apply(self, db: sqlite3.Connection, event: LegEvent, now: float) -> Leg:
        row = db.execute(f"SELECT {COLUMNS}, expires_at FROM legs WHERE call_sid = ?",  # noqa: S608
                         (event.call_sid,)).fetchone()
        if row is not None and row[-1] <= now:
            # Forgotten but not purged yet: answered from the tombstone purge will write.
            status, ended_at, until = tombstone(_leg(row), self.retention)
            if until > now:
                return from_tombstone(event.call_sid, status, ended_at)
            row = None
        if row is None:
            tomb = db.execute("SELECT status, ended_at FROM tombstones "
                              "WHERE call_sid = ? AND expires_at > ?",
                              (event.call_sid, now)).fetchone()
            if tomb is not None:
                return from_tombstone(event.call_sid, tomb[0], tomb[1])
        current = _leg(row) if row else None
        leg = merge(current, event, now)
        if leg is current:
            return leg
        expiry = expires_at(leg, self.retention)
        if current is not None and _same_call(leg, current):
            # Only the status and times moved (five callbacks in six): the indexes on the
            # parent and the identity are left alone.
            db.execute(UPDATE_STATUS, (leg.status, leg.updated_at, leg.ended_at, expiry,
                                       leg.call_sid))
        else:
            db.execute(UPSERT, (
                leg.call_sid, leg.parent_sid, leg.account_sid, leg.from_, leg.to,
                leg.direction, leg.status, leg.identity, leg.updated_at, leg.ended_at,
                expiry))
        if leg.is_ended and not (current and current.is_ended):
            # Written as the leg ends, in the same transaction: from here on no later
            # event can make this SID live again, whenever the leg's row goes.
            db.execute(BURY, (leg.call_sid, *tombstone(leg, self.retention)))
        return leg

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        legs = self._select("call_sid = ?", (call_sid,))
        return legs[0] if legs else None

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children of the call, oldest first."""
        legs = self._select("call_sid = ? OR parent_sid = ?", (root_sid, root_sid))
        return sorted(legs, key=call_order)

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits, in call SID order."""
        legs = self._select("identity = ? AND ended_at IS NULL", (identity,))
        return sorted((leg for leg in legs if leg.is_live), key=lambda leg: leg.call_sid)

    def live_calls(self, limit: int = 1000, *, after: str | None = None,
                   identity: str | None = None,
                   statuses: frozenset[str] | None = None) -> list[list[Leg]]:
        """Open calls with a leg that matches the filters, by call SID, after `after`."""
        now = self.clock()
        # The calls with a leg that matches the filters (an open leg matches no filter): SQL
        # built from this module's literals, the values all `?`s.
        match, args = ["expires_at > ?"], [now]  # type: list[str], list[object]
        if identity is not None:
            match.append("identity = ?")
            args.append(identity)
        if statuses is not None:
            match.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += sorted(statuses)
        else:
            match.append("ended_at IS NULL")
        filtered = ("AND coalesce(parent_sid, call_sid) IN (SELECT coalesce(parent_sid, "  # noqa: S608
                    f"call_sid) FROM legs WHERE {' AND '.join(match)}) "
                    if identity is not None or statuses is not None else "")
        # One query for every leg of up to `limit` open calls (not one query per call): the
        # roots first, then their legs through the call_sid and parent_sid indexes.
        rows = self.db.read(
            "WITH roots AS (SELECT DISTINCT coalesce(parent_sid, call_sid) AS sid FROM legs "  # noqa: S608
            "WHERE ended_at IS NULL AND expires_at > ? AND coalesce(parent_sid, call_sid) > ? "
            f"{filtered}ORDER BY sid LIMIT ?) "
            f"SELECT {COLUMNS} FROM legs WHERE (call_sid IN (SELECT sid FROM roots) "
            "OR parent_sid IN (SELECT sid FROM roots)) AND expires_at > ?",
            (now, after or "", *(args if filtered else ()), limit, now))
        calls: dict[str, list[Leg]] = {}
        for leg in map(_leg, rows):
            calls.setdefault(leg.root_sid, []).append(leg)
        return [sorted(calls[root], key=call_order) for root in sorted(calls)]

    def registry_age(self) -> float:
        """Seconds since this file began recording legs."""
        return registry.registry_age(self.db, self.clock())

    def purge(self) -> int:
        """Forget legs whose retention has run out, and tombstones whose time has come."""
        now = self.clock()
        self._last_purge = now

        def forget(db: sqlite3.Connection) -> int:
            # A leg whose end was never reported is buried as it goes (Retention's
            # `tombstone`), and so are ended legs stored before tombstones existed.
            db.execute("INSERT OR IGNORE INTO tombstones SELECT call_sid, "
                       "CASE WHEN ended_at IS NULL THEN ? ELSE status END, "
                       "coalesce(ended_at, expires_at), coalesce(ended_at, expires_at) + ? "
                       "FROM legs WHERE expires_at <= ?",
                       (EXPIRED_STATUS, self.retention.tombstone_s, now))
            db.execute("DELETE FROM tombstones WHERE expires_at <= ?", (now,))
            return int(db.execute("DELETE FROM legs WHERE expires_at <= ?", (now,)).rowcount)

        return self.db.write(forget)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        self.db.read("SELECT 1 FROM legs LIMIT 1")

    def close(self) -> None:
        """Close the database's idle connections."""
        self.db.close()
