"""The leg-store port: the durable leg registry every adapter (SQLite, Redis) implements."""

from __future__ import annotations

from typing import Protocol

from services.legs.model import Leg, LegEvent


class LegStore(Protocol):
    """A durable registry of call legs, safe to share between processes."""

    def apply(self, event: LegEvent) -> Leg:
        """Atomically fold an event into its leg and persist the result.

        An ended leg leaves a tombstone (Retention.tombstone_s) in the same transaction: an
        event for its SID after the leg is forgotten records nothing and returns the ended
        leg as the tombstone describes it (status and ended_at only).
        """
        ...

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        ...

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children of the call whose parent is root_sid."""
        ...

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits, in call SID order."""
        ...

    def live_calls(self, limit: int = 1000, *, after: str | None = None,
                   identity: str | None = None,
                   statuses: frozenset[str] | None = None) -> list[list[Leg]]:
        """Calls that still have a non-ended leg, each as `call_legs` returns it, by call SID.

        Only the calls with a leg that matches every filter: `identity`, and a status among
        `statuses` (None: any status but a terminal one); only those whose (parent) SID
        sorts after `after`; at most `limit` of them.
        """
        ...

    def registry_age(self) -> float:
        """Seconds since this registry began recording legs: 0 when it was just created or lost.

        A registry younger than the longest call may be missing calls that began before it.
        """
        ...

    def purge(self) -> int:
        """Forget legs whose retention has run out (and expired tombstones); how many legs."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
