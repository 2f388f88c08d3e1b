"""The record_status use case with the in-memory store: record durably first, then tell forwarding."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.calls import phone_calls_sdk
from services.errors import StoreUnavailable, ValidationFailed
from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention
from services.use_cases.record_status import record_status
from tests.support.clock import FakeClock
from tests.support.fake_twilio import ACCOUNT_SID
from tests.support.memory_store import MemoryLegStore

URL = "https://relay.example.com/twilio/messages"


class ToldForwarding:
    """Stands in for Forwarding: records what it is told, and what the store held by then."""

    def __init__(self, store: MemoryLegStore) -> None:
        self.store = store
        self.told: list[tuple[LegEvent, Leg, str, Leg | None]] = []

    def leg_recorded(self, event: LegEvent, leg: Leg, callback_url: str) -> None:
        self.told.append((event, leg, callback_url, self.store.get(leg.call_sid)))


@pytest.fixture
def store() -> MemoryLegStore:
    return MemoryLegStore(clock=FakeClock())


@pytest.fixture
def forwarding(store: MemoryLegStore) -> ToldForwarding:
    return ToldForwarding(store)


def record(store: MemoryLegStore, forwarding: Any, params: dict[str, str]) -> Any:
    return record_status(store, forwarding, params, URL, Retention())


def test_a_callback_is_recorded_and_forwarding_told_after(store, forwarding):
    call = phone_calls_sdk(ACCOUNT_SID)
    ringing = call.answer[1].params  # the SDK child rings
    recorded = record(store, forwarding, ringing)
    assert recorded.event == LegEvent.from_params(ringing)
    assert recorded.leg == store.get(call.child_sid)
    assert (recorded.leg.identity, recorded.leg.status) == ("bob", "ringing")
    [(event, leg, url, stored)] = forwarding.told
    assert (event, leg, url) == (recorded.event, recorded.leg, URL)
    assert stored == leg  # durable before forwarding heard of it


def test_the_leg_is_the_fold_of_every_callback_so_far(store, forwarding):
    call = phone_calls_sdk(ACCOUNT_SID)
    results = [record(store, forwarding, step.params) for step in call.answer]
    late = results[2]  # `initiated` arrived after `ringing`: the leg stays ringing
    assert (late.event.status, late.leg.status) == ("initiated", "ringing")
    assert results[-1].leg.status == "in-progress"
    assert [told[0].status for told in forwarding.told] == ["ringing", "ringing", "initiated",
                                                            "in-progress"]


def test_without_forwarding_the_leg_is_still_recorded(store):
    call = phone_calls_sdk(ACCOUNT_SID)
    recorded = record_status(store, None, call.answer[0].params, URL, Retention())
    assert store.get(call.parent_sid) == recorded.leg


@pytest.mark.parametrize("params", [
    {"CallSid": "CA123", "CallStatus": "ringing"},
    {"CallSid": "CA" + "a" * 32, "CallStatus": "ringing", "ParentCallSid": "nope"},
    {"CallSid": "CA" + "a" * 32, "CallStatus": "answered"},
    {"CallStatus": "ringing"},
])
def test_parameters_that_describe_no_leg_change_nothing(store, forwarding, params):
    with pytest.raises(ValidationFailed):
        record(store, forwarding, params)
    assert store.registry.rows == {} and forwarding.told == []


def test_when_the_store_is_down_forwarding_hears_nothing(store, forwarding):
    store.unavailable = True
    with pytest.raises(StoreUnavailable):
        record(store, forwarding, phone_calls_sdk(ACCOUNT_SID).answer[0].params)
    assert forwarding.told == []
