"""The outbox port in memory: passes the contract suite that the SQLite and Redis outboxes pass
(tests/forwarding/test_outbox_contract.py), for tests that need forwarding without I/O."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.store.outbox import DEAD_S, SEEN_S, Backlog, DeadEvent, OutboxEvent
from tests.support.memory_store import MemoryLeases


@dataclass
class _Row:
    """One event as the SQLite table holds it: its place in the queue and its state."""

    seq: int
    event: OutboxEvent
    state: str = "pending"  # pending, done (delivered, or a deleted dead event) or dead
    attempts: int = 0
    due_at: float = 0.0
    owner: str | None = None
    last_error: str | None = None
    closed_at: float | None = None
    aside: bool = False  # set aside: it no longer holds its stream


class MemoryOutbox(MemoryLeases):
    """Events per stream in a dict, under one lock; leases as MemoryLeases keeps them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._rows: dict[str, _Row] = {}
        self._seq = itertools.count(1)
        self._events_lock = threading.Lock()

    def _forget(self, now: float) -> None:
        for event_id, row in list(self._rows.items()):
            kept = SEEN_S if row.state == "done" else DEAD_S
            if row.closed_at is not None and row.closed_at <= now - kept:
                del self._rows[event_id]

    def enqueue(self, event: OutboxEvent) -> bool:
        """Queue `event` unless its id is already known; True when it was queued now."""
        now = self._now()
        with self._events_lock:
            self._forget(now)
            if event.id in self._rows:
                return False
            created = event.created_at or now
            self._rows[event.id] = _Row(next(self._seq), OutboxEvent(
                event.id, event.stream, event.body, 0, created), due_at=now)
            return True

    def lease(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxEvent]:
        """Lease the due head event of up to `limit` streams to `owner` for `lease_s`."""
        now = self._now()
        with self._events_lock:
            # The head of each stream (among the events that hold it), and events set aside.
            heads: dict[str, _Row] = {}
            aside: list[_Row] = []
            for row in sorted(self._rows.values(), key=lambda r: r.seq):
                if row.state == "pending" and row.aside:
                    aside.append(row)
                elif row.state == "pending":
                    heads.setdefault(row.event.stream, row)
            due = sorted((r for r in [*heads.values(), *aside] if r.due_at <= now),
                         key=lambda r: (r.due_at, r.seq))[:limit]
            for row in due:
                row.owner, row.due_at = owner, now + lease_s
            return [OutboxEvent(r.event.id, r.event.stream, r.event.body, r.attempts,
                                r.event.created_at) for r in due]

    def _pending(self, event_id: str, owner: str | None = None) -> _Row | None:
        row = self._rows.get(event_id)
        if row is None or row.state != "pending" or (owner is not None and row.owner != owner):
            return None
        return row

    def ack(self, event_id: str) -> None:
        """The backend accepted the event: keep only its id, to recognise duplicates."""
        now = self._now()
        with self._events_lock:
            if row := self._pending(event_id):
                row.state, row.owner, row.closed_at = "done", None, now

    def retry_at(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and hold the event (and its stream) until `at`."""
        self._now()
        with self._events_lock:
            if row := self._pending(event_id, owner):
                row.attempts += 1
                row.due_at, row.last_error, row.owner = at, error, None

    def set_aside(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and retry the event at `at` on its own; its stream's next
        event may go now."""
        self._now()
        with self._events_lock:
            if row := self._pending(event_id, owner):
                row.attempts += 1
                row.due_at, row.last_error, row.owner, row.aside = at, error, None, True

    def bury(self, event_id: str, owner: str, error: str) -> None:
        """Move the event to the dead list; its stream's next event may go."""
        now = self._now()
        with self._events_lock:
            if row := self._pending(event_id, owner):
                row.attempts += 1
                row.state, row.last_error, row.owner, row.closed_at = "dead", error, None, now

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Dead events, newest first."""
        now = self._now()
        with self._events_lock:
            self._forget(now)
            rows = sorted((r for r in self._rows.values() if r.state == "dead"),
                          key=lambda r: (r.closed_at or 0.0, r.seq), reverse=True)[:limit]
            return [DeadEvent(r.event.id, r.event.stream, r.event.body, r.attempts,
                              r.event.created_at, r.closed_at or 0.0, r.last_error)
                    for r in rows]

    def _revive(self, rows: list[_Row], now: float) -> int:
        for row in sorted(rows, key=lambda r: (r.event.created_at, r.seq)):
            # A new place in the queue: behind what is already pending on its stream.
            self._rows[row.event.id] = _Row(next(self._seq), row.event, due_at=now)
        return len(rows)

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again with a fresh attempt count; False when it is not dead."""
        now = self._now()
        with self._events_lock:
            row = self._rows.get(event_id)
            return row is not None and row.state == "dead" and self._revive([row], now) == 1

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first; returns how many."""
        now = self._now()
        with self._events_lock:
            return self._revive([r for r in self._rows.values() if r.state == "dead"], now)

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good, its id still known for SEEN_S; False when not dead."""
        now = self._now()
        with self._events_lock:
            row = self._rows.get(event_id)
            if row is None or row.state != "dead":
                return False
            row.state, row.closed_at = "done", now
            return True

    def backlog(self) -> Backlog:
        """Pending and dead events."""
        now = self._now()
        with self._events_lock:
            self._forget(now)
            states = [row.state for row in self._rows.values()]
            return Backlog(pending=states.count("pending"), dead=states.count("dead"))

    def close(self) -> None:
        """Nothing to release."""
