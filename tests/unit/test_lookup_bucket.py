"""The lookup budget on a fake clock: a rate with a burst, and a cap on lookups in flight."""

from __future__ import annotations

import threading
import time

import pytest

from services.errors import LookupBudgetExhausted
from services.legs.model import LegEvent
from services.use_cases.lookup_budget import Budget, LookupBudget
from services.use_cases.reconcile import Reconciler
from tests.support.clock import FakeClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.memory_store import MemoryLegStore


class Seen:
    """A LookupObserver that records what it is told."""

    def __init__(self) -> None:
        self.lookups: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []

    def lookup(self, kind: str, outcome: str) -> None:
        self.lookups.append((kind, outcome))

    def lookup_refused(self, kind: str, reason: str) -> None:
        self.refused.append((kind, reason))


def spend(budget: LookupBudget, requests: int = 1, kind: str = "call") -> None:
    with budget.spend(kind, requests, deadline=None):
        pass


def test_a_burst_then_the_rate_then_503_with_the_wait_in_retry_after():
    clock, seen = FakeClock(), Seen()
    budget = LookupBudget(Budget(rate_per_s=2, burst=10), clock=clock, observer=seen)
    for _ in range(10):
        spend(budget)
    with pytest.raises(LookupBudgetExhausted) as refused:
        spend(budget)
    assert (refused.value.status, refused.value.code) == (503, "lookup_budget_exhausted")
    assert refused.value.headers == {"Retry-After": "1"}  # half a second, rounded up
    clock.advance(0.5)
    spend(budget)  # one token back
    with pytest.raises(LookupBudgetExhausted) as refused:
        spend(budget, requests=4, kind="client")  # an identity lookup costs four
    assert refused.value.headers == {"Retry-After": "2"}
    clock.advance(2)
    spend(budget, requests=4, kind="client")
    clock.advance(3600)
    for _ in range(10):  # refilled to the burst, never beyond
        spend(budget)
    with pytest.raises(LookupBudgetExhausted):
        spend(budget)
    assert seen.refused == [("call", "rate"), ("client", "rate"), ("call", "rate")]


class Gate(FakeTwilio):
    """Lookups wait at Twilio until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.arrived = threading.Semaphore(0)

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        self.arrived.release()
        assert self.gate.wait(10)
        return super().fetch_call(call_sid, deadline=deadline)


def test_at_most_four_lookups_wait_on_twilio_and_the_next_is_refused():
    clock, twilio, seen = FakeClock(), Gate(), Seen()
    budget = LookupBudget(Budget(rate_per_s=1, burst=100), clock=clock, observer=seen)
    reconciler = Reconciler(MemoryLegStore(clock=clock), twilio, clock, budget=budget,
                            observer=seen)
    results: list[object] = []

    def look_up(sid: str) -> None:
        try:
            results.append(reconciler.call(sid))
        except LookupBudgetExhausted as exc:  # handed back to the main thread
            results.append(exc)

    threads = [threading.Thread(target=look_up, args=(f"CA{n:032x}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(4):
        assert twilio.arrived.acquire(timeout=10)
    # A fifth lookup whose request has no time left to wait for a slot.
    with pytest.raises(LookupBudgetExhausted) as refused:
        reconciler.call(f"CA{99:032x}", deadline=time.monotonic())
    assert refused.value.headers == {"Retry-After": "1"}
    twilio.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == [None] * 4
    assert seen.refused == [("call", "concurrency")]
    assert seen.lookups == [("call", "unknown")] * 4
    spend(budget, requests=96)  # 100 - 4: the refused lookup gave its token back
