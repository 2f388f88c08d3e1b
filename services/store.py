"""The store port: the durable leg registry every adapter (SQLite, Redis) implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.legs import Leg, LegEvent


@dataclass(frozen=True)
class Retention:
    """How long legs are kept: ended ones for `ended_s`, others at most `live_s` after an update."""

    ended_s: float = 3600.0
    # Twilio ends calls after 4 hours by default; a leg whose `completed` callback was lost
    # must not stay "live" (and in the store) for ever.
    live_s: float = 4 * 3600.0


class Store(Protocol):
    """A durable registry of call legs, safe to share between processes."""

    def apply(self, event: LegEvent) -> Leg:
        """Atomically fold an event into its leg and persist the result."""
        ...

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        ...

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children of the call whose parent is root_sid."""
        ...

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits."""
        ...

    def live_calls(self, limit: int = 1000) -> list[list[Leg]]:
        """Calls that still have a non-ended leg, each as `call_legs` returns it."""
        ...

    def purge(self) -> int:
        """Forget legs whose retention has run out; returns how many."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def open_store(url: str, retention: Retention) -> Store:
    """The adapter for a `sqlite:///path` or `redis://…` URL."""
    if url.startswith("sqlite:///"):
        from services.sqlite_store import SQLiteStore

        return SQLiteStore(url.removeprefix("sqlite:///"), retention)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from services.redis_store import RedisStore

        return RedisStore(url, retention)
    raise ValueError(f"unsupported store URL scheme: {url.split(':', 1)[0]}")
