"""In-memory adapters of the store ports, built on the pure leg rules: fast, and faithful.

`MemoryLegStore` passes the same contract suite as the SQLite and Redis stores
(tests/store/), so a unit test that uses it sees what a real store would do, without I/O.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.errors import StoreUnavailable
from services.legs.model import Leg, LegEvent
from services.legs.rules import (
    Retention,
    call_order,
    expires_at,
    from_tombstone,
    merge,
    tombstone,
)
from services.store.history import MAX_ENTRIES, HistoryEntry, history_expires_at


class MemoryRegistry:
    """One in-memory "database": legs with when each may be forgotten, shared by stores."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, tuple[Leg, float]] = {}
        self.tombstones: dict[str, tuple[Leg, float]] = {}  # ended legs, kept far longer
        self.started_at: float | None = None  # set by the first store that asks its age
        # call SID -> (when its history may go, entry id -> entry)
        self.histories: dict[str, tuple[float, dict[str, HistoryEntry]]] = {}


class MemoryLegStore:
    """The LegStore port in a dict; `unavailable = True` makes every call fail as an outage."""

    def __init__(self, retention: Retention | None = None,
                 clock: Callable[[], float] = time.time,
                 registry: MemoryRegistry | None = None) -> None:
        self.retention = retention or Retention()
        self.clock = clock
        self.registry = registry or MemoryRegistry()
        self.unavailable = False
        self.closed = False

    def _retained(self) -> list[Leg]:
        if self.unavailable:
            raise StoreUnavailable()
        now = self.clock()
        with self.registry.lock:
            return [leg for leg, until in self.registry.rows.values() if until > now]

    def apply(self, event: LegEvent) -> Leg:
        """Fold an event into its leg (atomically: under the registry's lock)."""
        if self.unavailable:
            raise StoreUnavailable()
        now = self.clock()
        with self.registry.lock:
            row = self.registry.rows.get(event.call_sid)
            if row is not None and row[1] <= now:
                self._bury(row[0])  # forgotten (ended or not), as purge would
                row = None
            current = row[0] if row is not None else None
            tomb = self.registry.tombstones.get(event.call_sid)
            if current is None and tomb is not None and tomb[1] > now:
                return tomb[0]  # ended, then forgotten: never live again
            leg = merge(current, event, now)
            if leg is not current:
                self.registry.rows[leg.call_sid] = (leg, expires_at(leg, self.retention))
                if leg.is_ended and not (current and current.is_ended):
                    self._bury(leg)
            return leg

    def _bury(self, leg: Leg) -> None:
        """Write the leg's tombstone (under the registry's lock); the same whenever written."""
        status, ended_at, until = tombstone(leg, self.retention)
        self.registry.tombstones[leg.call_sid] = (from_tombstone(leg.call_sid, status, ended_at),
                                                  until)

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        return next((leg for leg in self._retained() if leg.call_sid == call_sid), None)

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children, oldest first."""
        legs = [leg for leg in self._retained()
                if root_sid in (leg.call_sid, leg.parent_sid)]
        return sorted(legs, key=call_order)

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits."""
        return sorted((leg for leg in self._retained()
                       if leg.identity == identity and leg.is_live), key=lambda leg: leg.call_sid)

    def registry_age(self) -> float:
        """Seconds since this registry began; a registry that never said starts now."""
        if self.unavailable:
            raise StoreUnavailable()
        now = self.clock()
        with self.registry.lock:
            if self.registry.started_at is None:
                self.registry.started_at = now
            return max(0.0, now - self.registry.started_at)

    def live_calls(self, limit: int = 1000, *, after: str | None = None,
                   identity: str | None = None,
                   statuses: frozenset[str] | None = None) -> list[list[Leg]]:
        """Open calls with a leg that matches the filters, by call SID, after `after`."""
        retained = self._retained()
        open_calls = {leg.root_sid for leg in retained if not leg.is_ended}
        matching = {leg.root_sid for leg in retained
                    if (identity is None or leg.identity == identity)
                    and (leg.status in statuses if statuses is not None else not leg.is_ended)}
        roots = sorted(root for root in open_calls & matching if after is None or root > after)
        return [self.call_legs(root) for root in roots[:limit]]

    def purge(self) -> int:
        """Forget legs whose retention has run out; returns how many."""
        if self.unavailable:
            raise StoreUnavailable()
        now = self.clock()
        with self.registry.lock:
            gone = [sid for sid, (_, until) in self.registry.rows.items() if until <= now]
            for sid in gone:
                self._bury(self.registry.rows.pop(sid)[0])
            for sid in [sid for sid, (_, until) in self.registry.tombstones.items()
                        if until <= now]:
                del self.registry.tombstones[sid]
        return len(gone)

    def ping(self) -> None:
        """Raise StoreUnavailable while the test says the store is down."""
        if self.unavailable:
            raise StoreUnavailable()

    def close(self) -> None:
        """Nothing to release; remembered so a test can check it was called."""
        self.closed = True


class MemoryMessageHistory:
    """The MessageHistory port in a dict; `unavailable = True` makes every call fail."""

    def __init__(self, retention: Retention | None = None,
                 clock: Callable[[], float] = time.time,
                 registry: MemoryRegistry | None = None) -> None:
        self.retention = retention or Retention()
        self.clock = clock
        self.registry = registry or MemoryRegistry()
        self.unavailable = False
        self.writes = 0  # store writes, for the tests that count them

    def _now(self) -> float:
        if self.unavailable:
            raise StoreUnavailable()
        return self.clock()

    def _held(self, call_sid: str, now: float) -> dict[str, HistoryEntry] | None:
        until, held = self.registry.histories.get(call_sid, (0.0, {}))
        return held if until > now else None

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries unless their call holds their id; each call keeps its newest."""
        now = self._now()
        self.writes += 1
        with self.registry.lock:
            for entry in entries:
                held = self._held(entry.call_sid, now) or {}
                held.setdefault(entry.id, entry)
                newest = sorted(held.values(), key=lambda e: (e.at, e.id))[-MAX_ENTRIES:]
                self.registry.histories[entry.call_sid] = (
                    history_expires_at(now, self.retention), {e.id: e for e in newest})

    def update(self, call_sid: str, entry_id: str, status: str, *, attempts: int | None = None,
               error: Mapping[str, Any] | None = None) -> bool:
        """Set an entry's status, attempts and error; False when the call holds no such entry."""
        now = self._now()
        self.writes += 1
        with self.registry.lock:
            held = self._held(call_sid, now)
            if held is None or entry_id not in held:
                return False
            held[entry_id] = dataclasses.replace(held[entry_id], status=status,
                                                 attempts=attempts, error=error)
            return True

    def call_ended(self, call_sid: str, ended_at: float) -> None:
        """Keep the call's history LEG_RETENTION_S from `ended_at`."""
        now = self._now()
        self.writes += 1
        with self.registry.lock:
            held = self._held(call_sid, now)
            if held is not None:
                self.registry.histories[call_sid] = (
                    ended_at + self.retention.leg_retention_s, held)

    def entries(self, call_sid: str) -> list[HistoryEntry]:
        """The call's history, oldest first."""
        now = self._now()
        with self.registry.lock:
            held = self._held(call_sid, now) or {}
            return sorted(held.values(), key=lambda e: (e.at, e.id))

    def purge(self) -> int:
        """Forget the histories whose time has come; how many entries."""
        now = self._now()
        with self.registry.lock:
            gone = [sid for sid, (until, _) in self.registry.histories.items() if until <= now]
            return sum(len(self.registry.histories.pop(sid)[1]) for sid in gone)

    def close(self) -> None:
        """Nothing to release."""


class MemoryLeases:
    """The Leases port in a dict, on a clock the test can move."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.unavailable = False
        self._lock = threading.Lock()
        self._until: dict[str, float] = {}

    def _now(self) -> float:
        if self.unavailable:
            raise StoreUnavailable()
        return self.clock()

    def take_lease(self, name: str, lease_s: float) -> bool:
        """Take `name` for `lease_s` unless someone holds it and it has not run out."""
        now = self._now()
        with self._lock:
            if self._until.get(name, now) > now:
                return False
            self._until[name] = now + lease_s
            return True

    def renew_lease(self, name: str, lease_s: float) -> None:
        """Hold a taken lease for `lease_s` from now."""
        now = self._now()
        with self._lock:
            self._until[name] = now + lease_s

    def release_lease(self, name: str) -> None:
        """Give a lease up, so it can be taken again."""
        self._now()
        with self._lock:
            self._until.pop(name, None)

    def held(self, name: str) -> bool:
        """True while someone holds `name` (for assertions)."""
        with self._lock:
            return self._until.get(name, self.clock()) > self.clock()
