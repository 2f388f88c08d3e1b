"""The Subscriber with a fake Twilio and in-memory leases: once per leg, retried, never stuck."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest

from sandbox.calls import new_call_sid
from services.errors import TwilioRefused, TwilioTimeout, TwilioUnavailable
from services.forwarding.subscriptions import (
    Subscriber,
    SubscriptionOptions,
    idempotency_key,
    lease_name,
)
from services.legs.model import Leg
from tests.support.clock import FakeClock
from tests.support.fake_twilio import FakeTwilio
from tests.support.memory_store import MemoryLeases

URL = "https://relay.example.com/twilio/messages"
OPTIONS = SubscriptionOptions(attempts=3, delay_s=0.02, lease_s=120.0,
                              subscribed_lease_s=4 * 3600.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def leases(clock: FakeClock) -> MemoryLeases:
    return MemoryLeases(clock)


@pytest.fixture
def twilio() -> FakeTwilio:
    return FakeTwilio()


@pytest.fixture
def subscriber(leases: MemoryLeases, twilio: FakeTwilio) -> Iterator[Subscriber]:
    subscriber = Subscriber(leases, twilio, OPTIONS)
    yield subscriber
    subscriber.stop()


def sdk_leg(status: str = "in-progress", identity: str | None = "bob") -> Leg:
    return Leg(call_sid=new_call_sid(), status=status, parent_sid=new_call_sid(),
               to=f"client:{identity}" if identity else "+15550001111", identity=identity)


def test_a_live_sdk_leg_is_subscribed_once(subscriber, twilio, leases):
    leg = sdk_leg()
    assert subscriber.leg_recorded(leg, URL) is True
    assert subscriber.leg_recorded(leg, URL) is False  # a repeated callback: leased already
    assert subscriber.wait_idle(5)
    [request] = twilio.made("subscribe")
    assert (request.call_sid, request.callback_url, request.idempotency_key) == (
        leg.call_sid, URL, idempotency_key(leg.call_sid))
    assert subscriber.leg_recorded(leg, URL) is False
    assert len(twilio.made("subscribe")) == 1


@pytest.mark.parametrize("leg", [sdk_leg("initiated"), sdk_leg("completed"),
                                 sdk_leg(identity=None)], ids=["initiated", "ended", "phone"])
def test_only_live_sdk_legs_are_subscribed(subscriber, twilio, leases, leg):
    assert subscriber.leg_recorded(leg, URL) is False
    assert subscriber.wait_idle(5)
    assert twilio.requests == []
    assert not leases.held(lease_name(leg.call_sid))


def test_success_keeps_the_lease_as_long_as_a_call_can_last(subscriber, leases, clock):
    leg = sdk_leg()
    subscriber.subscribe(leg.call_sid, URL)
    clock.advance(OPTIONS.lease_s + 1)  # the short lease taken while subscribing has run out
    assert leases.held(lease_name(leg.call_sid))
    clock.advance(OPTIONS.subscribed_lease_s)
    assert not leases.held(lease_name(leg.call_sid))


def test_twilio_unavailable_is_retried_with_backoff(subscriber, twilio, leases):
    leg = sdk_leg()
    assert leases.take_lease(lease_name(leg.call_sid), OPTIONS.lease_s)
    twilio.fail("subscribe", TwilioUnavailable("down"), times=1)
    twilio.fail("subscribe", TwilioTimeout("slow"), times=1)
    subscriber.subscribe(leg.call_sid, URL)
    attempts = twilio.made("subscribe")
    assert [r.error for r in attempts] == ["twilio_unavailable", "twilio_timeout", None]
    gaps = [b.at - a.at for a, b in pairwise(attempts)]
    assert gaps[0] >= OPTIONS.delay_s and gaps[1] >= 2 * OPTIONS.delay_s  # doubled
    assert {r.idempotency_key for r in attempts} == {idempotency_key(leg.call_sid)}
    assert leases.held(lease_name(leg.call_sid))


def test_when_retries_run_out_the_lease_is_released(subscriber, twilio, leases):
    leg = sdk_leg()
    assert subscriber.leg_recorded(leg, URL)
    twilio.fail("subscribe", TwilioUnavailable("down"), times=None)
    assert subscriber.wait_idle(5)
    assert len(twilio.made("subscribe")) == OPTIONS.attempts
    assert not leases.held(lease_name(leg.call_sid))  # a later callback may try again
    twilio.heal()
    assert subscriber.leg_recorded(leg, URL) and subscriber.wait_idle(5)
    assert list(twilio.subscriptions) == [leg.call_sid]


def test_twilio_refusing_is_not_retried_and_the_lease_is_released(subscriber, twilio, leases):
    leg = sdk_leg()
    assert subscriber.leg_recorded(leg, URL)
    twilio.fail("subscribe", TwilioRefused("refused", twilio_status=400, twilio_code=21220))
    assert subscriber.wait_idle(5)
    assert [r.error for r in twilio.made("subscribe")] == ["twilio_refused"]
    assert not leases.held(lease_name(leg.call_sid))


def test_an_unreachable_lease_store_never_fails_the_webhook(subscriber, twilio, leases):
    leases.unavailable = True
    assert subscriber.leg_recorded(sdk_leg(), URL) is False
    assert subscriber.wait_idle(5)
    assert twilio.requests == []


def test_two_subscribers_on_one_lease_store_subscribe_once(leases, twilio):
    """Two workers (or instances) see the same callback: one subscribes."""
    workers = [Subscriber(leases, twilio, OPTIONS) for _ in range(2)]
    leg = sdk_leg()
    try:
        assert [w.leg_recorded(leg, URL) for w in workers] == [True, False]
        assert all(w.wait_idle(5) for w in workers)
    finally:
        for worker in workers:
            worker.stop()
    assert len(twilio.made("subscribe")) == 1


def test_a_store_failure_on_release_is_swallowed(subscriber, twilio, leases):
    leg = sdk_leg()
    twilio.fail("subscribe", TwilioRefused("refused"))
    leases.take_lease(lease_name(leg.call_sid), OPTIONS.lease_s)
    leases.unavailable = True
    subscriber.subscribe(leg.call_sid, URL)  # logs, does not raise
    leases.unavailable = False
    assert leases.held(lease_name(leg.call_sid))  # it runs out on its own

