"""The budget of Twilio requests that lookups may make in one process: a rate with a burst (a
token bucket) and a cap on lookups in flight.

Lookups (a call SID or an identity callrelay does not know) are the one place where a caller
chooses how many requests callrelay makes to Twilio: one bearer token sending random call SIDs
or identities drove hundreds of Calls API requests a second. Each request a lookup makes costs
one token; past the budget, a lookup answers 503 lookup_budget_exhausted with Retry-After.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from services.errors import LookupBudgetExhausted

# Lookups waiting on Twilio at once, per process, whatever their kind: the account's REST
# concurrency is shared with message sends, which must not queue behind lookups.
MAX_IN_FLIGHT = 4
# How long a lookup waits for a slot when its request set no deadline.
SLOT_WAIT_S = 5.0


@dataclass(frozen=True)
class Budget:
    """LOOKUP_BUDGET: Twilio requests a second that lookups may make, and the burst."""

    rate_per_s: float = 10.0
    burst: int = 40


class LookupObserver(Protocol):
    """What the lookups report, through an optional hook, for the metrics."""

    def lookup(self, kind: str, outcome: str) -> None:
        """A lookup of `kind` (call, children, client) ended: found, unknown, failed, cached."""
        ...

    def lookup_refused(self, kind: str, reason: str) -> None:
        """A lookup was refused: `rate` (the budget is spent) or `concurrency` (no slot)."""
        ...


class LookupBudget:
    """A token bucket of Twilio requests and a cap on lookups in flight, shared by a process."""

    def __init__(self, budget: Budget | None = None, *, in_flight: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic,
                 observer: LookupObserver | None = None) -> None:
        self.budget = budget or Budget()
        self.clock = clock
        self.observer = observer
        self._tokens = float(self.budget.burst)
        self._at = clock()
        self._guard = threading.Lock()
        self._slots = threading.BoundedSemaphore(in_flight)

    @contextmanager
    def spend(self, kind: str, requests: int, deadline: float | None) -> Iterator[None]:
        """Hold `requests` tokens and a slot for one lookup; LookupBudgetExhausted without."""
        self._take(kind, requests)
        # Deadlines are time.monotonic() based, whatever clock the bucket runs on.
        wait_s = SLOT_WAIT_S if deadline is None else deadline - time.monotonic()
        if not self._slots.acquire(timeout=max(0.0, wait_s)):
            self._give_back(requests)
            self._refused(kind, "concurrency")
            raise LookupBudgetExhausted(
                f"{MAX_IN_FLIGHT} lookups at Twilio are in progress in this process; retry "
                "shortly.", retry_after_s=1)
        try:
            yield
        finally:
            self._slots.release()

    def _take(self, kind: str, requests: int) -> None:
        with self._guard:
            now = self.clock()
            rate, burst = self.budget.rate_per_s, self.budget.burst
            self._tokens = min(float(burst), self._tokens + (now - self._at) * rate)
            self._at = now
            if self._tokens >= requests:
                self._tokens -= requests
                return
            wait_s = (requests - self._tokens) / rate
        self._refused(kind, "rate")
        raise LookupBudgetExhausted(
            "callrelay's budget of Twilio lookups (LOOKUP_BUDGET) is spent for now: it looks "
            "up unknown call SIDs and identities at Twilio at a bounded rate.",
            retry_after_s=max(1, math.ceil(wait_s)))

    def _give_back(self, requests: int) -> None:
        with self._guard:
            self._tokens = min(float(self.budget.burst), self._tokens + requests)

    def _refused(self, kind: str, reason: str) -> None:
        if self.observer is not None:
            self.observer.lookup_refused(kind, reason)
