"""The Reconciler with a fake Twilio and the in-memory store: what it asks Twilio, and how often."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from services.errors import LookupBudgetExhausted, TwilioUnavailable
from services.legs.model import LegEvent
from services.legs.rules import Retention
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


# --- what each lookup reports and spends ----------------------------------------------------

class Outcomes:
    """Records what the lookups report (the metrics' hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.refused: list[tuple[str, str]] = []

    def lookup(self, kind: str, outcome: str) -> None:
        self.seen.append((kind, outcome))

    def lookup_refused(self, kind: str, reason: str) -> None:
        self.refused.append((kind, reason))


@pytest.fixture
def outcomes() -> Outcomes:
    return Outcomes()


def reporting(store, twilio, clock, outcomes, budget=None) -> Reconciler:
    return Reconciler(store, twilio, clock, budget=budget, observer=outcomes)


def test_each_lookup_reports_its_outcome(store, twilio, clock, outcomes):
    reconciler = reporting(store, twilio, clock, outcomes)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    unknown = new_call_sid()
    assert reconciler.call(unknown) is None
    assert reconciler.call(unknown) is None
    reconciler.call(call.child_sid)
    assert reconciler.client("nobody") == []
    assert reconciler.client("nobody") == []
    assert outcomes.seen == [
        ("call", "unknown"), ("call", "cached"),
        ("call", "found"), ("call", "found"), ("children", "found"),  # the child, its parent
        ("client", "unknown"), ("client", "cached")]


def test_a_parent_twilio_does_not_know_is_reported_unknown(store, twilio, clock, outcomes):
    reconciler = reporting(store, twilio, clock, outcomes)
    call = phone_calls_sdk(ACCOUNT_SID)
    child = [e for e in as_twilio_knows(call.answer) if e.call_sid == call.child_sid]
    twilio.knows(*child)
    leg = reconciler.call(call.child_sid)
    assert leg is not None and leg.parent_sid == call.parent_sid
    assert store.get(call.parent_sid) is None
    assert outcomes.seen == [("call", "found"), ("call", "unknown"), ("children", "found")]


def test_a_failed_lookup_is_reported_and_its_error_is_a_copy(store, twilio, clock, outcomes):
    reconciler = reporting(store, twilio, clock, outcomes)
    sid = new_call_sid()
    twilio.fail("fetch_call", TwilioUnavailable("down"))
    with pytest.raises(TwilioUnavailable) as first:
        reconciler.call(sid)
    with pytest.raises(TwilioUnavailable) as second:
        reconciler.call(sid)
    assert second.value is not first.value and second.value.message == "down"
    assert outcomes.seen == [("call", "failed"), ("call", "cached")]


def test_a_failed_parent_lookup_is_not_remembered_under_the_childs_sid(store, twilio, clock):
    reconciler = Reconciler(store, twilio, clock)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    twilio.fail("fetch_call", TwilioUnavailable("down"), call_sid=call.parent_sid)
    with pytest.raises(TwilioUnavailable):
        reconciler.call(call.child_sid)
    # The child was recorded before its parent's lookup failed: it answers from the store.
    assert reconciler.call(call.child_sid) == store.get(call.child_sid)


def test_children_found_and_unknown(store, twilio, clock, outcomes):
    reconciler = reporting(store, twilio, clock, outcomes)
    reconciler.children(new_call_sid())
    assert outcomes.seen == [("children", "unknown")]


def test_an_identity_lookup_spends_four_requests_of_the_budget(store, twilio, clock, outcomes):
    budget = LookupBudget(Budget(rate_per_s=0.001, burst=9), clock=clock)
    reconciler = reporting(store, twilio, clock, outcomes, budget)
    reconciler.client("a")
    reconciler.client("b")
    with pytest.raises(LookupBudgetExhausted):
        reconciler.client("c")  # 1 token left of 9
    reconciler.call(new_call_sid())  # a call lookup costs one
    assert asked(twilio, "calls_for_client") == ["client:a", "client:b"]
    assert len(twilio.made("fetch_call")) == 1


def test_a_lookup_refused_by_the_budget_is_not_remembered(store, twilio, clock):
    budget = LookupBudget(Budget(rate_per_s=1.0, burst=1), clock=clock)
    reconciler = Reconciler(store, twilio, clock, budget=budget)
    reconciler.call(new_call_sid())
    sid = new_call_sid()
    with pytest.raises(LookupBudgetExhausted):
        reconciler.call(sid)
    clock.advance(1.0)  # a token again; the refusal was not an answer to remember
    assert reconciler.call(sid) is None
    assert asked(twilio, "fetch_call")[-1] == sid


def test_an_ended_call_past_its_retention_answers_from_its_tombstone(twilio, clock):
    # Kept no time at all after it ends: the store holds only its tombstone once recorded.
    store = MemoryLegStore(retention=Retention(leg_retention_s=0.0), clock=clock)
    reconciler = Reconciler(store, twilio, clock)
    call = sdk_calls_phone(ACCOUNT_SID)
    twilio.knows(LegEvent(call.parent_sid, "completed", from_="client:alice"))
    leg = reconciler.call(call.parent_sid)
    assert leg is not None and (leg.status, leg.identity) == ("completed", "alice")
    assert store.get(call.parent_sid) is None  # forgotten already: no children to list
    assert twilio.made("child_calls") == []


def test_every_lookup_is_made_within_the_callers_deadline(store, twilio, clock):
    reconciler = Reconciler(store, twilio, clock)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    reconciler.call(call.child_sid, deadline=77.0)
    reconciler.client("bob", deadline=78.0)
    reconciler.client("nobody", deadline=79.0)
    assert [(r.method, r.deadline) for r in twilio.requests] == [
        ("fetch_call", 77.0), ("fetch_call", 77.0), ("child_calls", 77.0),
        ("calls_for_client", 79.0)]  # bob's leg is in the store by then: no lookup


def test_failures_and_refusals_are_reported_by_kind(store, twilio, clock, outcomes):
    refusals = Outcomes()
    budget = LookupBudget(Budget(rate_per_s=0.001, burst=3), clock=clock, observer=refusals)
    reconciler = reporting(store, twilio, clock, outcomes, budget)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    twilio.fail("fetch_call", TwilioUnavailable("down"), call_sid=call.parent_sid)
    with pytest.raises(TwilioUnavailable):
        reconciler.call(call.child_sid)  # the child is found, its parent's lookup fails
    twilio.fail("child_calls", TwilioUnavailable("down"))
    with pytest.raises(TwilioUnavailable):
        reconciler.children(call.parent_sid)
    with pytest.raises(TwilioUnavailable):
        reconciler.children(call.parent_sid)  # the failure, remembered briefly
    with pytest.raises(LookupBudgetExhausted):
        reconciler.client("nobody")  # 4 requests: the 3 tokens are spent
    with pytest.raises(LookupBudgetExhausted):
        reconciler.call(new_call_sid())
    assert outcomes.seen == [("call", "found"), ("call", "failed"), ("children", "failed"),
                             ("children", "cached")]
    assert refusals.refused == [("client", "rate"), ("call", "rate")]


def test_a_lookup_past_its_deadline_does_not_wait_for_a_slot(store, twilio, clock,
                                                              monkeypatch):
    # Without a deadline a lookup would wait this long for a slot: here, past the test's own.
    monkeypatch.setattr("services.use_cases.lookup_budget.SLOT_WAIT_S", 3600.0)
    budget = LookupBudget(in_flight=1, clock=clock)
    reconciler = Reconciler(store, twilio, clock, budget=budget)
    call = phone_calls_sdk(ACCOUNT_SID)
    outcome: list[object] = []

    def look_up(what) -> None:
        try:
            outcome.append(what())
        except Exception as error:  # handed back: this thread asserts
            outcome.append(error)

    past = time.monotonic() - 1.0
    lookups = [lambda: reconciler.call(call.child_sid, past),
               lambda: reconciler.children(call.parent_sid, past),
               lambda: reconciler.client("bob", past)]
    with budget.spend("call", 1, None):  # the only slot, taken
        for lookup in lookups:
            thread = threading.Thread(target=look_up, args=(lookup,), daemon=True)
            thread.start()
            thread.join(timeout=30)
            assert not thread.is_alive(), "the lookup waited for a slot past its deadline"
    assert [type(o) for o in outcome] == [LookupBudgetExhausted] * 3
    assert twilio.requests == []


def test_an_ended_leg_still_retained_is_completed_with_its_parent_and_siblings(store, twilio,
                                                                               clock):
    reconciler = Reconciler(store, twilio, clock)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.steps))  # the call is over: every leg completed
    leg = reconciler.call(call.child_sid)
    assert leg is not None and leg.status == "completed"
    assert asked(twilio, "fetch_call") == [call.child_sid, call.parent_sid]
    assert asked(twilio, "child_calls") == [call.parent_sid]


def test_a_client_found_at_twilio_is_reported_found(store, twilio, clock, outcomes):
    reconciler = reporting(store, twilio, clock, outcomes)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    assert [leg.call_sid for leg in reconciler.client("bob")] == [call.child_sid]
    assert outcomes.seen == [("client", "found")]


def test_the_reconcilers_maps_hold_only_recent_keys(store, twilio, clock):
    # A memory bound no public call shows: the answers kept and the per-key locks stay as few
    # as the keys looked up in the last CACHE_S (private state, read on purpose).
    reconciler = Reconciler(store, twilio, clock)
    first, second, third = new_call_sid(), new_call_sid(), new_call_sid()
    reconciler.call(first)
    clock.advance(CACHE_S)  # exactly CACHE_S old: still kept
    reconciler.call(second)
    assert set(reconciler._answers) == {first, second}
    assert set(reconciler._locks) == {first, second}
    clock.advance(0.5)  # the first answer is now older than CACHE_S: it and its lock go
    reconciler.call(third)
    assert set(reconciler._answers) == {second, third}
    assert set(reconciler._locks) == {second, third}
    reconciler.children(third)
    reconciler.client("nobody")
    assert set(reconciler._locks) == {second, third, f"children:{third}", "client:nobody"}


def test_a_parent_lookup_past_its_deadline_does_not_wait_for_a_slot(twilio, clock, monkeypatch):
    monkeypatch.setattr("services.use_cases.lookup_budget.SLOT_WAIT_S", 3600.0)
    budget = LookupBudget(in_flight=1, clock=clock)
    held = ExitStack()

    class TakesTheSlotOnApply(MemoryLegStore):
        """Between the child's lookup and its parent's, another lookup takes the only slot."""

        def apply(self, event):
            held.enter_context(budget.spend("call", 1, None))
            return super().apply(event)

    store = TakesTheSlotOnApply(clock=clock)
    reconciler = Reconciler(store, twilio, clock, budget=budget)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    outcome: list[object] = []

    def look_up() -> None:
        try:
            outcome.append(reconciler.call(call.child_sid, time.monotonic() + 0.5))
        except Exception as error:  # handed back: this thread asserts
            outcome.append(error)

    thread = threading.Thread(target=look_up, daemon=True)
    thread.start()
    thread.join(timeout=30)
    held.close()
    assert not thread.is_alive(), "the parent's lookup waited for a slot past its deadline"
    assert [type(o) for o in outcome] == [LookupBudgetExhausted]
    assert asked(twilio, "fetch_call") == [call.child_sid]
