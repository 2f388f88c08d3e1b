"""Reconciliation: learn from Twilio's Calls API what the webhooks did not tell us."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from services.errors import RelayError
from services.legs.model import Leg
from services.store.legs import LegStore
from services.twilio.port import TwilioGateway
from services.use_cases.lookup_budget import LookupBudget, LookupObserver

# How long an answer from Twilio stands before the same SID (or identity) may be looked up
# again: notifying someone offline, however often, costs Twilio one lookup per this.
CACHE_S = 10.0
# How long a lookup that failed (Twilio down, slow, refusing) answers with the same error:
# long enough that a burst of requests for one SID is one request to Twilio, short enough
# that a blip is not remembered.
ERROR_CACHE_S = 2.0
# The Calls listings an identity lookup makes (to and from the client, ringing and in-progress).
CLIENT_LISTINGS = 4


class Reconciler:
    """Looks unknown calls and clients up at Twilio: one lookup per key at a time, cached, within
    the process's lookup budget."""

    def __init__(self, store: LegStore, twilio: TwilioGateway,
                 clock: Callable[[], float] = time.monotonic, *,
                 budget: LookupBudget | None = None,
                 observer: LookupObserver | None = None) -> None:
        self.store = store
        self.twilio = twilio
        self.clock = clock
        self.budget = budget or LookupBudget(clock=clock)
        self.observer = observer
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        # key -> (when, the error it failed with, or None for an answer)
        self._answers: dict[str, tuple[float, RelayError | None]] = {}

    def call(self, call_sid: str, deadline: float | None = None) -> Leg | None:
        """The leg `call_sid` after asking Twilio about it and its call, or None if unknown."""
        with self._lock_for(call_sid):
            leg = self.store.get(call_sid)
            if leg is not None or self._cached(call_sid, "call"):
                return leg
            with self._asking(call_sid, "call", deadline):
                event = self.twilio.fetch_call(call_sid, deadline=deadline)
            self._report("call", "unknown" if event is None else "found")
            if event is None:
                return None
            leg = self.store.apply(event)
            if leg.is_ended and self.store.get(call_sid) is None:
                return leg  # ended past its retention: the store keeps its tombstone only
            if leg.parent_sid is not None and self.store.get(leg.parent_sid) is None:
                with self._asking(None, "call", deadline):
                    parent = self.twilio.fetch_call(leg.parent_sid, deadline=deadline)
                self._report("call", "unknown" if parent is None else "found")
                if parent is not None:
                    self.store.apply(parent)
        self.children(leg.root_sid, deadline)
        return self.store.get(call_sid)

    def children(self, root_sid: str, deadline: float | None = None) -> None:
        """Record the children Twilio lists for `root_sid` (unless listed moments ago)."""
        key = f"children:{root_sid}"
        with self._lock_for(key):
            if self._cached(key, "children"):
                return
            with self._asking(key, "children", deadline):
                events = self.twilio.child_calls(root_sid, deadline=deadline)
            self._report("children", "found" if events else "unknown")
        for event in events:
            self.store.apply(event)

    def client(self, identity: str, deadline: float | None = None) -> list[Leg]:
        """The live SDK legs of `identity` after asking Twilio (unless asked moments ago)."""
        key = f"client:{identity}"
        with self._lock_for(key):
            # Whoever held the lock before may have just found (and stored) the legs.
            legs = self.store.live_sdk_legs(identity)
            if legs or self._cached(key, "client"):
                return legs
            with self._asking(key, "client", deadline, CLIENT_LISTINGS):
                events = self.twilio.calls_for_client(identity, deadline=deadline)
            # Stored before the lock goes, so a request that waited for it finds them.
            for event in events:
                self.store.apply(event)
            legs = self.store.live_sdk_legs(identity)
            self._report("client", "found" if legs else "unknown")
            return legs

    @contextmanager
    def _asking(self, key: str | None, kind: str, deadline: float | None,
                requests: int = 1) -> Iterator[None]:
        """One lookup at Twilio, within the budget; its answer (or error) is kept under `key`."""
        # LookupBudgetExhausted comes from here: nothing was asked, nothing is remembered.
        with self.budget.spend(kind, requests, deadline):
            try:
                yield
            except RelayError as error:
                self._report(kind, "failed")
                if key is not None:
                    self._remember(key, error)
                raise
        if key is not None:
            self._remember(key, None)

    def _cached(self, key: str, kind: str) -> bool:
        """True when Twilio answered about `key` moments ago; raises the error it failed with."""
        at, error = self._answers.get(key, (None, None))
        if at is None or self.clock() - at >= (CACHE_S if error is None else ERROR_CACHE_S):
            return False
        self._report(kind, "cached")
        if error is not None:
            raise copy.copy(error).with_traceback(None)  # one error object per request
        return True

    def _remember(self, key: str, error: RelayError | None) -> None:
        with self._guard:  # _lock_for walks the map under the same lock
            self._answers[key] = (self.clock(), error)

    def _report(self, kind: str, outcome: str) -> None:
        if self.observer is not None:
            self.observer.lookup(kind, outcome)

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            now = self.clock()
            # Drop stale entries so the maps stay as small as the recent unknown SIDs.
            for k in [k for k, (at, _) in self._answers.items() if now - at > CACHE_S]:
                del self._answers[k]
            for k in [k for k, lock in self._locks.items()
                      if k != key and k not in self._answers and not lock.locked()]:
                del self._locks[k]
            return self._locks.setdefault(key, threading.Lock())

