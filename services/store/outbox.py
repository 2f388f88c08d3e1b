"""The outbox port: events waiting for delivery to the backend, in order per call, durably.

An event belongs to a *stream* (the call's parent SID). Only the oldest pending event of a
stream can be leased, so event N+1 of a call is never delivered before N is acknowledged, with
one exception: an event *set aside* (the backend refused it more than once) no longer holds its
stream; it is retried on its own schedule, and its stream's next events go on.
A lease is a time-bounded hold, here and for the named leases below: a worker that dies
mid-delivery loses its lease when it runs out, and another worker retakes the event. Event
ids are the `webhook-id` the backend sees: an id already queued (or delivered within
`SEEN_S`) is not queued again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# How long a delivered event's id is remembered, so a late duplicate is not queued again.
SEEN_S = 24 * 3600.0
# How long dead events stay listed (and retryable) before they are forgotten.
DEAD_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class OutboxEvent:
    """One event to deliver: its webhook-id, its stream (ordering key) and its JSON body."""

    id: str
    stream: str
    body: str
    attempts: int = 0
    created_at: float = 0.0


@dataclass(frozen=True)
class DeadEvent:
    """An event that could not be delivered after the maximum number of attempts."""

    id: str
    stream: str
    body: str
    attempts: int
    created_at: float
    dead_at: float
    last_error: str | None


@dataclass(frozen=True)
class Backlog:
    """What the outbox holds now: events waiting for delivery, and dead events listed."""

    pending: int
    dead: int


class Outbox(Protocol):
    """Durable queue of events per stream, shared by every worker and instance."""

    def enqueue(self, event: OutboxEvent) -> bool:
        """Queue `event` unless its id is already known; True when it was queued now."""
        ...

    def lease(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxEvent]:
        """Lease the due head event of up to `limit` streams to `owner` for `lease_s`."""
        ...

    def ack(self, event_id: str) -> None:
        """The backend accepted the event: drop it, and let its stream's next event go."""
        ...

    def retry_at(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and hold the event (and its stream) until `at`."""
        ...

    def set_aside(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and retry the event at `at` on its own; its stream's next
        event may go now."""
        ...

    def bury(self, event_id: str, owner: str, error: str) -> None:
        """Move the event to the dead list; its stream's next event may go."""
        ...

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Dead events, newest first."""
        ...

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again with a fresh attempt count; False when it is not dead."""
        ...

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first (a call's events keep their order);
        returns how many."""
        ...

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good, its id still known for SEEN_S (a duplicate is not
        queued again); False when it is not dead."""
        ...

    def backlog(self) -> Backlog:
        """How many events are pending (queued, being delivered or waiting for a retry) and
        dead, counted in the store: the same whichever worker or instance asks."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class Leases(Protocol):
    """Named leases: "take if nobody holds it", each held until it runs out or is released."""

    def take_lease(self, name: str, lease_s: float) -> bool:
        """Take `name` for `lease_s` unless someone holds it and it has not run out."""
        ...

    def renew_lease(self, name: str, lease_s: float) -> None:
        """Hold a taken lease for `lease_s` from now."""
        ...

    def release_lease(self, name: str) -> None:
        """Give a lease up, so it can be taken again."""
        ...


class ForwardingStore(Outbox, Leases, Protocol):
    """What forwarding needs from storage: the outbox and the named leases."""
