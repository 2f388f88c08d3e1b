"""The call_history use case on the in-memory stores: when a history goes, what a failure costs."""

from __future__ import annotations

from sandbox.calls import phone_calls_sdk
from services.errors import TwilioRefused
from services.legs.model import Leg
from services.legs.rules import Retention
from services.store.outbox import OutboxEvent
from services.twilio.port import SentMessage
from services.use_cases.call_history import CallHistory
from services.use_cases.notify_delivery import Attempt
from services.use_cases.record_status import record_status
from tests.support.clock import FakeClock
from tests.support.fake_twilio import ACCOUNT_SID
from tests.support.memory_store import MemoryLegStore, MemoryMessageHistory

RETENTION = Retention(leg_retention_s=60, max_call_duration_s=600)
URL = "https://relay.example.com/twilio/messages"


class Failures:
    """A HistoryObserver that remembers what it was told."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def history_write_failed(self, operation: str) -> None:
        self.operations.append(operation)


def sent_to(leg: Leg, sid: str = "KX" + "1" * 32) -> Attempt:
    return Attempt(leg, None, SentMessage(sid=sid, call_sid=leg.call_sid, account_sid="AC",
                                          date_created=None))


def test_the_history_goes_retention_after_the_parent_leg_ends() -> None:
    clock = FakeClock()
    legs, store = MemoryLegStore(RETENTION, clock), MemoryMessageHistory(RETENTION, clock)
    history = CallHistory(store, clock=clock)
    call = phone_calls_sdk(ACCOUNT_SID)
    for step in call.answer:
        record_status(legs, None, step.params, URL, RETENTION, clock(), history=history)
    child = legs.get(call.child_sid)
    assert child is not None
    history.delivered("{}", [sent_to(child)])
    writes = store.writes
    clock.advance(100)
    child_ends, parent_ends = call.hangup
    record_status(legs, None, child_ends.params, URL, RETENTION, clock(), history=history)
    assert store.writes == writes  # a child may end while its parent goes on
    record_status(legs, None, parent_ends.params, URL, RETENTION, clock(), history=history)
    assert store.writes == writes + 1
    clock.advance(59)
    assert len(history.messages(call.parent_sid)) == 1
    clock.advance(2)
    assert history.messages(call.parent_sid) == []
    assert legs.get(call.parent_sid) is None  # gone with the legs, not later


def test_a_failed_write_is_counted_and_raises_nothing() -> None:
    store, failures = MemoryMessageHistory(), Failures()
    history = CallHistory(store, observer=failures)
    leg = Leg(call_sid="CA" + "a" * 32, status="in-progress", identity="erin")
    store.unavailable = True
    history.delivered("{}", [sent_to(leg), Attempt(leg, "k", TwilioRefused("no"))])
    history.call_ended(Leg(call_sid=leg.call_sid, status="completed", ended_at=1.0))
    history.forwarding_settled(OutboxEvent(id="msg_KX" + "2" * 32, stream=leg.call_sid,
                                           body="{}"), "forwarded", 1, None)
    assert failures.operations == ["notify", "call_ended", "forwarding"]


def test_leg_updates_are_no_messages() -> None:
    store = MemoryMessageHistory()
    history = CallHistory(store)
    event = OutboxEvent(id=f"leg_CA{'b' * 32}_completed", stream="CA" + "b" * 32, body="{}")
    history.forwarding_settled(event, "forwarded", 1, None)
    assert store.writes == 0
