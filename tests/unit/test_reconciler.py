"""The Reconciler with a fake Twilio and the in-memory store: what it asks Twilio, and how often."""

from __future__ import annotations

import threading

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from services.errors import TwilioUnavailable
from services.legs.model import LegEvent
from services.use_cases.lookup_budget import MAX_IN_FLIGHT, Budget, LookupBudget
from services.use_cases.reconcile import CACHE_S, ERROR_CACHE_S, Reconciler
from tests.support.calls import as_twilio_knows, record
from tests.support.clock import FakeClock
from tests.support.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.support.memory_store import MemoryLegStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryLegStore:
    return MemoryLegStore(clock=clock)


@pytest.fixture
def twilio() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def reconciler(store: MemoryLegStore, twilio: FakeTwilio, clock: FakeClock) -> Reconciler:
    return Reconciler(store, twilio, clock)


def asked(twilio: FakeTwilio, method: str) -> list[str]:
    return [r.call_sid for r in twilio.made(method)]


def test_a_known_leg_is_not_looked_up(reconciler, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    leg = reconciler.call(call.parent_sid)
    assert leg == store.get(call.parent_sid)
    assert twilio.requests == []


def test_a_parent_is_recorded_with_the_children_twilio_lists(reconciler, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    leg = reconciler.call(call.parent_sid, deadline=123.0)
    assert leg is not None and (leg.identity, leg.status) == ("alice", "ringing")
    assert asked(twilio, "fetch_call") == [call.parent_sid]
    assert asked(twilio, "child_calls") == [call.parent_sid]
    assert {r.deadline for r in twilio.requests} == {123.0}
    assert [x.call_sid for x in store.call_legs(call.parent_sid)] == [call.parent_sid,
                                                                      call.child_sid]


def test_a_childs_parent_is_fetched_too(reconciler, store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    leg = reconciler.call(call.child_sid)
    assert leg is not None and (leg.identity, leg.parent_sid) == ("bob", call.parent_sid)
    assert asked(twilio, "fetch_call") == [call.child_sid, call.parent_sid]
    assert asked(twilio, "child_calls") == [call.parent_sid]
    assert store.get(call.parent_sid) is not None


def test_a_parent_already_known_is_not_fetched_again(reconciler, store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.answer[:1])
    twilio.knows(*as_twilio_knows(call.answer))
    reconciler.call(call.child_sid)
    assert asked(twilio, "fetch_call") == [call.child_sid]


def test_an_unknown_sid_is_asked_once_while_the_answer_stands(reconciler, twilio, clock):
    unknown = new_call_sid()
    assert reconciler.call(unknown) is None
    clock.advance(CACHE_S - 0.1)
    assert reconciler.call(unknown) is None
    assert asked(twilio, "fetch_call") == [unknown]
    assert twilio.made("child_calls") == []  # nothing to list under an unknown call
    clock.advance(0.1)
    reconciler.call(unknown)
    assert asked(twilio, "fetch_call") == [unknown, unknown]


def test_a_call_twilio_learns_about_later_is_found_after_the_cache(reconciler, twilio, clock):
    call = sdk_calls_phone(ACCOUNT_SID)
    assert reconciler.call(call.parent_sid) is None
    twilio.knows(*as_twilio_knows(call.answer))
    assert reconciler.call(call.parent_sid) is None  # the "unknown" answer still stands
    clock.advance(CACHE_S)
    assert reconciler.call(call.parent_sid) is not None


def test_children_are_listed_once_while_the_answer_stands(reconciler, store, twilio, clock):
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.answer[:1])
    reconciler.children(call.parent_sid)
    twilio.knows(*as_twilio_knows(call.answer))
    reconciler.children(call.parent_sid)
    assert store.get(call.child_sid) is None
    clock.advance(CACHE_S)
    reconciler.children(call.parent_sid)
    assert asked(twilio, "child_calls") == [call.parent_sid, call.parent_sid]
    child = store.get(call.child_sid)
    assert child is not None and child.identity == "bob"


def test_listed_children_fold_into_what_the_webhooks_said(reconciler, store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.steps)  # the child's completed callback arrived
    twilio.knows(LegEvent(call.child_sid, "in-progress", parent_sid=call.parent_sid))
    reconciler.children(call.parent_sid)
    child = store.get(call.child_sid)
    assert child is not None and child.status == "completed"  # never moves backwards


def test_concurrent_lookups_of_one_sid_ask_twilio_once(store, clock):
    twilio = FakeTwilio(latency_s=0.05)  # long enough for the others to arrive meanwhile
    reconciler = Reconciler(store, twilio, clock)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    start = threading.Barrier(6)
    found: list[str | None] = []

    def look_up() -> None:
        start.wait()
        leg = reconciler.call(call.child_sid)
        found.append(leg.identity if leg else None)

    threads = [threading.Thread(target=look_up) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert found == ["bob"] * 6
    assert asked(twilio, "fetch_call") == [call.child_sid, call.parent_sid]
    assert asked(twilio, "child_calls") == [call.parent_sid]


def test_a_failed_lookup_answers_with_its_error_briefly(reconciler, twilio, clock):
    call = sdk_calls_phone(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    twilio.fail("fetch_call", TwilioUnavailable("down", retry_after_s=7))
    with pytest.raises(TwilioUnavailable):
        reconciler.call(call.parent_sid)
    clock.advance(ERROR_CACHE_S - 0.1)
    with pytest.raises(TwilioUnavailable) as again:  # the same answer, Twilio not asked
        reconciler.call(call.parent_sid)
    assert again.value.headers == {"Retry-After": "7"} and again.value.message == "down"
    assert asked(twilio, "fetch_call") == [call.parent_sid]
    clock.advance(0.1)
    assert reconciler.call(call.parent_sid) is not None
    assert asked(twilio, "fetch_call") == [call.parent_sid, call.parent_sid]


class InFlight(FakeTwilio):
    """Counts the identity lookups Twilio is serving at once."""

    def __init__(self) -> None:
        super().__init__(latency_s=0.05)
        self.now = self.most = 0
        self.count_lock = threading.Lock()

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        with self.count_lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return super().calls_for_client(identity, deadline=deadline)
        finally:
            with self.count_lock:
                self.now -= 1


def test_lookups_of_many_offline_identities_are_bounded_per_process(store, clock):
    twilio = InFlight()
    budget = LookupBudget(Budget(rate_per_s=1, burst=1000), clock=clock)
    reconciler = Reconciler(store, twilio, clock, budget=budget)
    identities = [f"offline{k}" for k in range(3 * MAX_IN_FLIGHT)]
    start = threading.Barrier(len(identities))
    found: dict[str, object] = {}  # the threads hand their answers back; this thread asserts

    def look_up(identity: str) -> None:
        start.wait()
        found[identity] = reconciler.client(identity)

    threads = [threading.Thread(target=look_up, args=(i,)) for i in identities]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert found == {identity: [] for identity in identities}
    assert sorted(asked(twilio, "calls_for_client")) == sorted(f"client:{i}" for i in identities)
    assert twilio.most <= MAX_IN_FLIGHT
