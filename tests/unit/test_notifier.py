"""The Notifier use case with a fake Twilio and the in-memory store: which leg, which error,
and what it asks Twilio when the registry does not know enough."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone, sdk_calls_sdk
from services.errors import (
    AmbiguousTarget,
    CallNotFound,
    ConferenceNotFound,
    IdentityNotFound,
    LegNotLive,
    NoSuchLeg,
    TwilioRefused,
    TwilioUnavailable,
    ValidationFailed,
)
from services.legs.conferences import Conference, Mark, Participant
from services.legs.model import LegEvent
from services.legs.rules import Retention
from services.use_cases.notify import Notifier, parse_request
from tests.support.calls import as_twilio_knows, record
from tests.support.clock import FakeClock
from tests.support.fake_twilio import ACCOUNT_SID, FakeTwilio
from tests.support.memory_store import MemoryLegStore

DEADLINE_S = 5.0


@pytest.fixture
def store() -> MemoryLegStore:
    return MemoryLegStore(clock=FakeClock())


@pytest.fixture
def twilio() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def notifier(store: MemoryLegStore, twilio: FakeTwilio) -> Notifier:
    return Notifier(store, twilio, DEADLINE_S)


def notify(notifier: Notifier, **body: Any) -> None:
    """Send a /notify body (content {"n": 1} unless given) through the use case."""
    notifier.notify(parse_request({"content": {"n": 1}, **body}))


def sent_to(twilio: FakeTwilio) -> list[str]:
    """The call SIDs Twilio was asked to deliver a message to, in order."""
    return [r.call_sid for r in twilio.made("send_message")]


def ringing_child(parent: str, to: str, status: str = "ringing") -> LegEvent:
    return LegEvent(new_call_sid(), status, parent_sid=parent, from_="+15550001111", to=to,
                    direction="outbound-dial")


def phone_call(store: MemoryLegStore) -> str:
    """A phone calls the Twilio number, and nothing has been dialled yet: the parent's SID."""
    parent = new_call_sid()
    store.apply(LegEvent(parent, "in-progress", from_="+15550001111", to="+15005550001",
                         direction="inbound"))
    return parent


# --- targeting by call_sid ------------------------------------------------------------------

@pytest.mark.parametrize("scenario, given", [
    (phone_calls_sdk, "parent_sid"), (phone_calls_sdk, "child_sid"),
    (sdk_calls_phone, "parent_sid"), (sdk_calls_phone, "child_sid"),
])
def test_the_sdk_leg_is_found_from_either_sid(notifier, store, twilio, scenario, given):
    call = scenario(ACCOUNT_SID)
    record(store, call.answer)
    notify(notifier, call_sid=getattr(call, given))
    assert sent_to(twilio) == [call.sdk_sid]


def test_the_given_leg_wins_when_an_sdk_sits_on_both(notifier, store, twilio):
    call = sdk_calls_sdk(ACCOUNT_SID)
    record(store, call.answer)
    notify(notifier, call_sid=call.child_sid)
    notify(notifier, call_sid=call.parent_sid)
    assert sent_to(twilio) == [call.child_sid, call.parent_sid]


def test_parent_and_child_legs_by_name(notifier, store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.answer)
    notify(notifier, call_sid=call.child_sid, leg="parent")
    notify(notifier, call_sid=call.parent_sid, leg="child")
    assert sent_to(twilio) == [call.parent_sid, call.child_sid]


def test_twilio_gets_the_content_and_the_deadline(notifier, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    before = time.monotonic()
    notify(notifier, call_sid=call.parent_sid, content={"b": [1, "é"]}, idempotency_key="k1")
    [request] = twilio.made("send_message")
    assert (request.content, request.error) == ('{"b":[1,"é"]}', None)
    assert request.idempotency_key is not None
    assert request.deadline is not None
    assert before + DEADLINE_S <= request.deadline <= time.monotonic() + DEADLINE_S
    assert twilio.made("fetch_call") == [] and twilio.made("child_calls") == []


# --- targeting by identity ------------------------------------------------------------------

def test_identity_with_one_live_leg(notifier, store, twilio):
    mine, other = phone_calls_sdk(ACCOUNT_SID, "bob"), phone_calls_sdk(ACCOUNT_SID, "carol")
    record(store, mine.answer + other.answer)
    notify(notifier, identity="bob")
    assert sent_to(twilio) == [mine.sdk_sid]


def test_identity_with_several_live_legs_sends_to_each(notifier, store, twilio):
    phone, laptop = sdk_calls_phone(ACCOUNT_SID, "alice"), phone_calls_sdk(ACCOUNT_SID, "alice")
    record(store, phone.answer + laptop.answer)
    notify(notifier, identity="alice")
    assert sorted(sent_to(twilio)) == sorted([phone.sdk_sid, laptop.sdk_sid])


def test_identity_skips_legs_that_are_not_live(notifier, store, twilio):
    ended, live = sdk_calls_phone(ACCOUNT_SID, "alice"), sdk_calls_phone(ACCOUNT_SID, "alice")
    record(store, ended.steps + live.answer)
    notify(notifier, identity="alice")
    assert sent_to(twilio) == [live.sdk_sid]


def test_identity_without_a_live_leg_is_not_found(notifier, store, twilio):
    record(store, sdk_calls_phone(ACCOUNT_SID, "alice").steps)  # ended
    with pytest.raises(IdentityNotFound) as err:
        notify(notifier, identity="alice")
    assert (err.value.status, err.value.details["identity"]) == (404, "alice")
    assert sent_to(twilio) == []


# --- errors: nothing reaches Twilio's Messages API ------------------------------------------

def test_a_call_unknown_here_and_at_twilio_is_not_found(notifier, twilio):
    unknown = new_call_sid()
    with pytest.raises(CallNotFound) as err:
        notify(notifier, call_sid=unknown)
    assert (err.value.status, err.value.code) == (404, "call_not_found")
    assert [r.call_sid for r in twilio.made("fetch_call")] == [unknown]
    assert sent_to(twilio) == []


@pytest.mark.parametrize("status", ["queued", "initiated", "completed", "no-answer"])
def test_an_sdk_leg_that_is_not_live_is_a_conflict(notifier, store, twilio, status):
    parent = phone_call(store)
    store.apply(ringing_child(parent, "client:bob", status))
    with pytest.raises(LegNotLive) as err:
        notify(notifier, call_sid=parent)
    assert (err.value.status, err.value.details["leg"]["status"]) == (409, status)
    assert sent_to(twilio) == []


def test_an_ended_sdk_call_is_a_conflict(notifier, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.steps)
    with pytest.raises(LegNotLive):
        notify(notifier, call_sid=call.child_sid)
    assert sent_to(twilio) == []


def test_a_call_forgotten_after_retention_but_known_to_twilio_is_not_live(twilio):
    clock = FakeClock()
    store = MemoryLegStore(Retention(leg_retention_s=60), clock)
    notifier = Notifier(store, twilio, DEADLINE_S)
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.steps)  # answered, then hung up
    clock.advance(61)  # past LEG_RETENTION_S: only the legs' tombstones are left
    twilio.knows(*as_twilio_knows(call.steps))  # ...while Twilio still lists the call, completed
    with pytest.raises(LegNotLive):
        notify(notifier, call_sid=call.parent_sid)
    assert sent_to(twilio) == []
    assert store.get(call.parent_sid) is None  # the lookup did not bring the leg back


def test_a_simultaneous_ring_is_ambiguous_until_one_answers(notifier, store, twilio):
    parent = phone_call(store)
    bob, carol = ringing_child(parent, "client:bob"), ringing_child(parent, "client:carol")
    store.apply(bob)
    store.apply(carol)
    with pytest.raises(AmbiguousTarget) as err:
        notify(notifier, call_sid=parent)
    assert err.value.status == 409
    assert {c["call_sid"] for c in err.value.details["candidates"]} == {bob.call_sid,
                                                                       carol.call_sid}
    assert sent_to(twilio) == []
    store.apply(LegEvent(bob.call_sid, "in-progress"))
    store.apply(LegEvent(carol.call_sid, "canceled"))
    notify(notifier, call_sid=parent)
    assert sent_to(twilio) == [bob.call_sid]


@pytest.mark.parametrize("leg", ["sdk", "child"])
def test_a_leg_neither_here_nor_at_twilio_is_no_such_leg(notifier, store, twilio, leg):
    parent = phone_call(store)
    with pytest.raises(NoSuchLeg) as err:
        notify(notifier, call_sid=parent, leg=leg)
    assert (err.value.status, err.value.code) == (409, "no_such_leg")
    assert [r.call_sid for r in twilio.made("child_calls")] == [parent]
    assert sent_to(twilio) == []


def test_twilio_refusing_the_message_is_the_error(notifier, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    twilio.fail("send_message", TwilioRefused("refused", twilio_status=400, twilio_code=21220))
    with pytest.raises(TwilioRefused) as err:
        notify(notifier, call_sid=call.parent_sid)
    assert err.value.details == {"twilio_status": 400, "twilio_code": 21220}


# --- reconciliation: what Twilio knows fills the gaps ---------------------------------------

def test_a_call_unknown_here_is_looked_up_at_twilio(notifier, store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))  # the webhooks never reached callrelay
    notify(notifier, call_sid=call.child_sid)
    assert sent_to(twilio) == [call.child_sid]
    assert [r.call_sid for r in twilio.made("fetch_call")] == [call.child_sid, call.parent_sid]
    assert [leg.call_sid for leg in store.call_legs(call.parent_sid)] == [call.parent_sid,
                                                                          call.child_sid]


@pytest.mark.parametrize("leg", ["sdk", "child"])
def test_a_child_twilio_lists_is_found(notifier, store, twilio, leg):
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.answer[:1])  # the child's callbacks do not point at callrelay
    twilio.knows(*as_twilio_knows(call.answer))
    notify(notifier, call_sid=call.parent_sid, leg=leg)
    assert sent_to(twilio) == [call.child_sid]
    assert [r.call_sid for r in twilio.made("child_calls")] == [call.parent_sid]
    assert twilio.made("fetch_call") == []


def test_an_unknown_call_is_looked_up_once_while_the_answer_stands(notifier, twilio):
    unknown = new_call_sid()
    for _ in range(3):
        with pytest.raises(CallNotFound):
            notify(notifier, call_sid=unknown)
    assert len(twilio.made("fetch_call")) == 1


def test_twilio_unavailable_during_the_lookup_is_the_error(notifier, twilio):
    twilio.fail("fetch_call", TwilioUnavailable("down"))
    with pytest.raises(TwilioUnavailable):
        notify(notifier, call_sid=new_call_sid())
    assert sent_to(twilio) == []


# --- several target legs and idempotency keys (CONTRACT "Several target legs") --------------

def two_devices(store: MemoryLegStore, identity: str = "alice") -> tuple[str, str]:
    """`identity` on two live calls at once: the two SDK legs' SIDs."""
    phone, laptop = sdk_calls_phone(ACCOUNT_SID, identity), phone_calls_sdk(ACCOUNT_SID, identity)
    record(store, phone.answer + laptop.answer)
    return phone.sdk_sid, laptop.sdk_sid


def test_a_retried_request_reuses_its_keys(notifier, store, twilio):
    two_devices(store)
    notify(notifier, identity="alice", idempotency_key="order-7")
    first = twilio.keys()
    notify(notifier, identity="alice", idempotency_key="order-7")
    assert twilio.keys() == first
    assert len(set(first.values())) == 2  # one message per leg...
    assert len(twilio.messages) == 2  # ...and Twilio did not create them twice


def test_a_call_sid_target_passes_the_key_as_given_and_an_identity_derives_one_per_leg(
        store, twilio):
    a, b = two_devices(store)
    notifier = Notifier(store, twilio, DEADLINE_S)
    notify(notifier, call_sid=a, idempotency_key="order-7")
    assert twilio.keys()[a] == "order-7"  # one leg named by the caller: the key as given
    notify(notifier, identity="alice", idempotency_key="order-8")
    by_identity = {sid: key for sid, key in twilio.keys().items() if key != "order-7"}
    assert by_identity == {a: f"order-8:{a}", b: f"order-8:{b}"}


def test_every_target_leg_is_tried_when_one_fails(notifier, store, twilio):
    a, b = two_devices(store)
    twilio.fail("send_message", TwilioRefused("refused", twilio_status=400, twilio_code=21220),
                call_sid=a)
    notify(notifier, identity="alice")  # one leg got its message: not an error
    assert sorted(sent_to(twilio)) == sorted([a, b])
    assert [m.call_sid for m in twilio.messages] == [b]


def test_when_every_leg_fails_each_was_tried_and_the_failure_is_the_error(notifier, store,
                                                                        twilio):
    a, b = two_devices(store)
    twilio.fail("send_message", TwilioUnavailable("down"), times=None)
    with pytest.raises(TwilioUnavailable):
        notify(notifier, identity="alice")
    assert sorted(sent_to(twilio)) == sorted([a, b])


# --- the exact errors a caller reads --------------------------------------------------------

def test_an_unknown_call_says_so_and_names_it(notifier):
    unknown = new_call_sid()
    with pytest.raises(CallNotFound) as err:
        notify(notifier, call_sid=unknown)
    assert err.value.message == "Neither callrelay nor Twilio knows a call with this SID."
    assert err.value.details == {"call_sid": unknown}


def test_a_call_ended_past_retention_says_when_it_ended(twilio):
    clock = FakeClock()
    store = MemoryLegStore(Retention(leg_retention_s=60), clock)
    notifier = Notifier(store, twilio, DEADLINE_S)
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.steps)
    clock.advance(61)
    twilio.knows(*as_twilio_knows(call.steps))
    with pytest.raises(LegNotLive) as err:
        notify(notifier, call_sid=call.parent_sid)
    assert err.value.message == ("The call leg is completed; it ended more than "
                                 "LEG_RETENTION_S ago.")
    assert err.value.details == {"call_sid": call.parent_sid, "status": "completed"}


def test_an_identity_without_a_live_call_says_whose(notifier):
    with pytest.raises(IdentityNotFound) as err:
        notify(notifier, identity="nobody")
    assert err.value.message == "No live call for the Voice SDK client 'nobody'."
    assert err.value.details == {"identity": "nobody"}


def test_a_registry_older_than_the_longest_call_is_not_second_guessed(twilio):
    clock = FakeClock()
    store = MemoryLegStore(Retention(), clock)
    notifier = Notifier(store, twilio, DEADLINE_S, max_call_duration_s=600.0)
    assert store.registry_age() == 0.0  # the registry begins now
    clock.advance(599.0)
    with pytest.raises(IdentityNotFound):
        notify(notifier, identity="nobody")
    assert len(twilio.made("calls_for_client")) == 1  # younger: Twilio is asked
    clock.advance(1.0)
    with pytest.raises(IdentityNotFound):
        notify(notifier, identity="someone")
    assert len(twilio.made("calls_for_client")) == 1  # as old as the longest call: not asked
    # A live leg in the registry is found there, whatever its age.
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    notify(notifier, identity="alice")
    assert sent_to(twilio) == [call.parent_sid]


def test_without_a_conference_registry_no_conference_is_found(notifier):
    with pytest.raises(ConferenceNotFound) as err:
        notify(notifier, conference="standup")
    assert err.value.message == "This callrelay keeps no conference registry."
    assert err.value.details == {"conference": "standup"}


def test_one_deadline_for_the_whole_request(notifier, store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    before = time.monotonic()
    notify(notifier, call_sid=call.parent_sid)
    [sent] = twilio.made("send_message")
    assert before + DEADLINE_S <= sent.deadline <= time.monotonic() + DEADLINE_S


class OneConference:
    """A conference registry that holds one conference."""

    def __init__(self, conference: Conference) -> None:
        self.conference = conference

    def get(self, sid: str) -> Conference | None:
        return self.conference if sid == self.conference.sid else None

    def find(self, name: str) -> Conference | None:
        return self.conference if name == self.conference.friendly_name else None


def test_a_conferences_unknown_participants_are_looked_up_within_the_deadline(store, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    standup = Conference(sid="CF" + "c" * 32, friendly_name="standup", started_at=1.0,
                         participants=(Participant(call.child_sid, joined=Mark(1, 1.0)),))
    notifier = Notifier(store, twilio, DEADLINE_S, conferences=OneConference(standup))
    before = time.monotonic()
    notify(notifier, conference="standup")
    [lookup] = twilio.made("fetch_call", call.child_sid)
    assert lookup.deadline is not None
    assert before + DEADLINE_S <= lookup.deadline <= time.monotonic() + DEADLINE_S
    assert sent_to(twilio) == [call.child_sid]


def test_an_identity_is_looked_up_within_the_requests_deadline(notifier, twilio):
    before = time.monotonic()
    with pytest.raises(IdentityNotFound):
        notify(notifier, identity="nobody")
    [lookup] = twilio.made("calls_for_client")
    assert lookup.deadline is not None
    assert before + DEADLINE_S <= lookup.deadline <= time.monotonic() + DEADLINE_S


class CountingStore(MemoryLegStore):
    """The in-memory store, recording the reads /notify makes."""

    def __init__(self) -> None:
        super().__init__(clock=FakeClock())
        self.reads: list[tuple[str, str]] = []

    def get(self, call_sid: str):
        self.reads.append(("get", call_sid))
        return super().get(call_sid)

    def call_legs(self, call_sid: str):
        self.reads.append(("call_legs", call_sid))
        return super().call_legs(call_sid)


def test_a_parents_sid_costs_one_read_and_a_childs_two(twilio):
    store = CountingStore()
    notifier = Notifier(store, twilio, DEADLINE_S)
    call = phone_calls_sdk(ACCOUNT_SID)
    record(store, call.answer)
    store.reads.clear()
    notify(notifier, call_sid=call.parent_sid)
    assert store.reads == [("call_legs", call.parent_sid)]
    store.reads.clear()
    notify(notifier, call_sid=call.child_sid)
    assert store.reads == [("call_legs", call.child_sid), ("call_legs", call.parent_sid)]
    assert sent_to(twilio) == [call.child_sid, call.child_sid]


def test_an_unknown_call_is_looked_up_within_the_requests_deadline(notifier, twilio):
    before = time.monotonic()
    with pytest.raises(CallNotFound):
        notify(notifier, call_sid=new_call_sid())
    [lookup] = twilio.made("fetch_call")
    assert lookup.deadline is not None
    assert before + DEADLINE_S <= lookup.deadline <= time.monotonic() + DEADLINE_S


def test_an_unknown_call_known_at_twilio_as_ended_is_not_live(notifier, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.steps))  # hung up: every leg completed
    with pytest.raises(LegNotLive) as err:
        notify(notifier, call_sid=call.parent_sid)
    assert err.value.message == ("The SDK leg is completed; Twilio accepts messages only while "
                                 "a leg is ringing or in-progress.")


def test_a_call_looked_up_is_read_from_the_store_once_more(twilio):
    store = CountingStore()
    notifier = Notifier(store, twilio, DEADLINE_S)
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.knows(*as_twilio_knows(call.answer))
    notify(notifier, call_sid=call.parent_sid)
    assert [r for r in store.reads if r[0] == "call_legs"] == [("call_legs", call.parent_sid)] * 2
    assert sent_to(twilio) == [call.child_sid]


def test_a_child_listed_at_twilio_gets_it_and_the_listing_is_within_the_deadline(store,
                                                                                 notifier,
                                                                                 twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer[:1])  # the SDK's parent leg only: its child's callbacks went astray
    twilio.knows(*as_twilio_knows(call.answer))
    before = time.monotonic()
    notify(notifier, call_sid=call.parent_sid, leg="child")
    assert sent_to(twilio) == [call.child_sid]
    [listing] = twilio.made("child_calls")
    assert listing.deadline is not None
    assert before + DEADLINE_S <= listing.deadline <= time.monotonic() + DEADLINE_S


@pytest.mark.parametrize(("content", "why"), [
    ("NaN", "NaN is not a JSON number"),
    ('{"a": Infinity}', "Infinity is not a JSON number"),
    (float("nan"), "a number is NaN, Infinity or beyond a double's range (like 1e999)"),
    ([float("inf")], "a number is NaN, Infinity or beyond a double's range (like 1e999)"),
])
def test_content_that_is_not_strict_json_says_why(notifier, content, why):
    with pytest.raises(ValidationFailed) as err:
        notify(notifier, call_sid=new_call_sid(), content=content)
    assert err.value.message == f"content must be strict JSON (RFC 8259): {why}."


def test_the_default_deadline_is_fifteen_seconds(store, twilio):
    call = sdk_calls_phone(ACCOUNT_SID)
    record(store, call.answer)
    before = time.monotonic()
    notify(Notifier(store, twilio), call_sid=call.parent_sid)
    [sent] = twilio.made("send_message")
    assert before + 15.0 <= sent.deadline <= time.monotonic() + 15.0
