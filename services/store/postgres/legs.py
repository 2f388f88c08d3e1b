"""PostgreSQL adapter of the store port: one registry shared by every callrelay instance."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from services.errors import StoreUnavailable
from services.legs.model import STATUS_RANK, Leg, LegEvent
from services.legs.rules import Retention, call_order, expires_at, from_tombstone, merge
from services.store.postgres import registry
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.leg_merge import APPLY, COLUMNS, CURRENT, PURGE
from services.store.postgres.purge import PURGE_BATCH, Purges, bounded_delete

# An event racing a purge of its own leg (or tombstone) finds nothing to return; it tries again.
APPLY_ATTEMPTS = 3
# The purge leaves a leg's row this long past its expiry (see leg_merge.PURGE).
PURGE_GRACE_S = 60.0


def _leg(row: tuple[Any, ...]) -> Leg:
    return Leg(call_sid=row[0], parent_sid=row[1], account_sid=row[2], from_=row[3], to=row[4],
               direction=row[5], status=row[6], identity=row[7], updated_at=row[8],
               ended_at=row[9])


class PostgresStore:
    """Legs in PostgreSQL; each callback is one upsert that merges in the database."""

    def __init__(self, db: PostgresDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self._purges = Purges(self.purge)
        self._born = False

    def _select(self, where: str, args: tuple[Any, ...]) -> list[Leg]:
        # `where` is one of this module's literals, never caller input.
        rows = self.db.rows(f"SELECT {COLUMNS} FROM callrelay_legs "  # noqa: S608
                            f"WHERE ({where}) AND expires_at > %s", (*args, self.clock()))
        return [_leg(r) for r in rows]

    def apply(self, event: LegEvent) -> Leg:
        """Atomically fold an event into its leg and persist the result.

        The SID of an ended leg past its retention is a tombstone: the ended leg it
        describes is returned and nothing is recorded.
        """
        now = self.clock()
        if not self._born:  # the first write of this process: the registry starts now at latest
            registry.mark_birth(self.db, now)
            self._born = True
        fresh = merge(None, event, now)
        args = {
            "sid": event.call_sid, "parent_sid": fresh.parent_sid,
            "account_sid": fresh.account_sid, "from_addr": fresh.from_, "to_addr": fresh.to,
            "direction": fresh.direction, "status": fresh.status, "identity": fresh.identity,
            "ended_at": fresh.ended_at, "expires_at": expires_at(fresh, self.retention),
            "rank": STATUS_RANK[event.status], "now": now,
            "retention_s": self.retention.leg_retention_s,
            "max_call_s": self.retention.max_call_duration_s,
            "tombstone_s": self.retention.tombstone_s,
        }
        leg = None
        for _ in range(APPLY_ATTEMPTS):
            leg = self.db.run(lambda conn: self._apply(conn, args))
            if leg is not None:
                break
        if leg is None:
            raise StoreUnavailable("The call registry (PostgreSQL) is too busy; retry shortly.")
        self._purges.maybe(now)
        return leg

    @staticmethod
    def _apply(conn: Any, args: dict[str, Any]) -> Leg | None:
        written = conn.execute(APPLY, args).fetchone()
        if written is not None:
            return _leg(written)
        # Nothing written: the event added nothing, or the SID is a tombstone.
        rows = conn.execute(CURRENT, args).fetchall()
        row = min(rows, key=lambda r: r[10], default=None)  # the leg's row before a tombstone
        if row is None:
            return None
        return from_tombstone(row[0], row[6], row[9]) if row[10] else _leg(row)

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        legs = self._select("call_sid = %s", (call_sid,))
        return legs[0] if legs else None

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children of the call, oldest first."""
        legs = self._select("call_sid = %s OR parent_sid = %s", (root_sid, root_sid))
        return sorted(legs, key=call_order)

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits, in call SID order."""
        legs = self._select("identity = %s AND ended_at IS NULL", (identity,))
        return sorted((leg for leg in legs if leg.is_live), key=lambda leg: leg.call_sid)

    def live_calls(self, limit: int = 1000, *, after: str | None = None,
                   identity: str | None = None,
                   statuses: frozenset[str] | None = None) -> list[list[Leg]]:
        """Open calls with a leg that matches the filters, by call SID, after `after`."""
        now = self.clock()
        args: dict[str, Any] = {"now": now, "after": after or "",
                                "limit": limit if limit >= 0 else None,
                                "identity": identity, "statuses": sorted(statuses or ())}
        # The calls with a leg that matches the filters (an open leg matches no filter): SQL
        # built from this module's literals, the values all parameters.
        match = ["expires_at > %(now)s"]
        if identity is not None:
            match.append("identity = %(identity)s")
        match.append("status = ANY(%(statuses)s)" if statuses is not None
                     else "ended_at IS NULL")
        filtered = ("AND coalesce(parent_sid, call_sid) IN (SELECT coalesce(parent_sid, "  # noqa: S608
                    f"call_sid) FROM callrelay_legs WHERE {' AND '.join(match)}) "
                    if identity is not None or statuses is not None else "")
        # One query for every leg of up to `limit` open calls: the roots first, then their
        # legs through the primary key and the parent index.
        rows = self.db.rows(
            "WITH roots AS (SELECT DISTINCT coalesce(parent_sid, call_sid) AS sid "  # noqa: S608
            "FROM callrelay_legs WHERE ended_at IS NULL AND expires_at > %(now)s "
            f"AND coalesce(parent_sid, call_sid) > %(after)s {filtered}"
            "ORDER BY sid LIMIT %(limit)s) "
            f"SELECT {COLUMNS} FROM callrelay_legs WHERE (call_sid IN (SELECT sid FROM roots) "
            "OR parent_sid IN (SELECT sid FROM roots)) AND expires_at > %(now)s", args)
        calls: dict[str, list[Leg]] = {}
        for leg in map(_leg, rows):
            calls.setdefault(leg.root_sid, []).append(leg)
        return [sorted(calls[root], key=call_order) for root in sorted(calls)]

    def registry_age(self) -> float:
        """Seconds since this database began recording legs (0 when it was just created)."""
        return registry.registry_age(self.db, self.clock())

    def purge(self) -> int:
        """Forget legs whose retention has run out (each leaving its tombstone), and
        tombstones whose time has come.

        Bounded: at most PURGE_BATCH rows of each table a call, so a purge riding on a webhook
        stays short; the next write carries on while a batch comes back full.
        """
        now = self.clock()

        def forget(conn: Any) -> int:
            row = conn.execute(PURGE, {"now": now, "before": now - PURGE_GRACE_S,
                                       "batch": PURGE_BATCH,
                                       "tombstone_s": self.retention.tombstone_s}).fetchone()
            bounded_delete(conn, "callrelay_tombstones", "call_sid", now)
            return int(row[0])

        forgotten = self.db.run(forget)
        self._purges.done(now, full=forgotten >= PURGE_BATCH)
        return forgotten

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        self.db.rows("SELECT 1")

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()
