"""Reconciliation: learn from Twilio's Calls API what the webhooks did not tell us."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from services.errors import TwilioUnavailable
from services.legs.model import Leg
from services.store.legs import LegStore
from services.twilio.port import TwilioGateway

# How long an answer from Twilio stands before the same SID (or identity) may be looked up
# again: notifying someone offline, however often, costs Twilio one lookup per this.
CACHE_S = 10.0
# Identity lookups in flight at once per process, whatever the identities: notifying many
# users who are offline queues here instead of fanning out to Twilio's API (4 listings each).
MAX_CLIENT_LOOKUPS = 4
# How long a lookup waits for a slot when its request set no deadline.
SLOT_WAIT_S = 5.0


class Reconciler:
    """Looks unknown calls and clients up at Twilio: one lookup per key at a time, cached."""

    def __init__(self, store: LegStore, twilio: TwilioGateway,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.twilio = twilio
        self.clock = clock
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._looked_up: dict[str, float] = {}
        self._client_slots = threading.BoundedSemaphore(MAX_CLIENT_LOOKUPS)

    def call(self, call_sid: str, deadline: float | None = None) -> Leg | None:
        """The leg `call_sid` after asking Twilio about it and its call, or None if unknown."""
        with self._lock_for(call_sid):
            leg = self.store.get(call_sid)
            if leg is not None or self._fresh(call_sid):
                return leg
            event = self.twilio.fetch_call(call_sid, deadline=deadline)
            self._looked_up[call_sid] = self.clock()
            if event is None:
                return None
            leg = self.store.apply(event)
            if leg.is_ended and self.store.get(call_sid) is None:
                return leg  # ended past its retention: the store keeps its tombstone only
            if leg.parent_sid is not None and self.store.get(leg.parent_sid) is None:
                parent = self.twilio.fetch_call(leg.parent_sid, deadline=deadline)
                if parent is not None:
                    self.store.apply(parent)
        self.children(leg.root_sid, deadline)
        return self.store.get(call_sid)

    def children(self, root_sid: str, deadline: float | None = None) -> None:
        """Record the children Twilio lists for `root_sid` (unless listed moments ago)."""
        key = f"children:{root_sid}"
        with self._lock_for(key):
            if self._fresh(key):
                return
            events = self.twilio.child_calls(root_sid, deadline=deadline)
            self._looked_up[key] = self.clock()
        for event in events:
            self.store.apply(event)

    def client(self, identity: str, deadline: float | None = None) -> list[Leg]:
        """The live SDK legs of `identity` after asking Twilio (unless asked moments ago)."""
        key = f"client:{identity}"
        with self._lock_for(key):
            # Whoever held the lock before may have just found (and stored) the legs.
            legs = self.store.live_sdk_legs(identity)
            if legs or self._fresh(key):
                return legs
            wait_s = SLOT_WAIT_S if deadline is None else deadline - time.monotonic()
            if not self._client_slots.acquire(timeout=max(0.0, wait_s)):
                raise TwilioUnavailable("Too many identity lookups are in progress at Twilio; "
                                        "retry shortly.", retry_after_s=1)
            try:
                events = self.twilio.calls_for_client(identity, deadline=deadline)
            finally:
                self._client_slots.release()
            # Stored before the lock goes, so a request that waited for it finds them.
            for event in events:
                self.store.apply(event)
            self._looked_up[key] = self.clock()
            return self.store.live_sdk_legs(identity)

    def _fresh(self, key: str) -> bool:
        at = self._looked_up.get(key)
        return at is not None and self.clock() - at < CACHE_S

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            now = self.clock()
            # Drop stale entries so the maps stay as small as the recent unknown SIDs.
            for k in [k for k, at in self._looked_up.items() if now - at > CACHE_S]:
                del self._looked_up[k]
            for k in [k for k, lock in self._locks.items()
                      if k != key and k not in self._looked_up and not lock.locked()]:
                del self._locks[k]
            return self._locks.setdefault(key, threading.Lock())

