"""Twilio's 429s: Retry-After honoured within the deadline, and a breaker that stops asking.

The real SDK talks HTTP to the Twilio mock; time is a fake clock that the gateway's sleeps
advance, so waits of seconds take none.
"""

from __future__ import annotations

import pytest

from config.settings import Settings
from sandbox.calls import new_call_sid
from services.errors import TwilioUnavailable
from services.twilio.breaker import MAX_OPEN_S, OPEN_S, Breaker
from services.twilio.rest import TwilioRestGateway
from tests.support.clock import FakeClock
from tests.support.env import make_env


class Sleeper(FakeClock):
    """The clock, and the sleep that advances it."""

    def __init__(self) -> None:
        super().__init__(now=1000.0)
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


class Observer:
    def __init__(self) -> None:
        self.events: list[tuple[str, float | None]] = []

    def twilio_request(self, method: str, url: str, outcome: str, seconds: float) -> None:
        """Not counted here."""

    def twilio_retry(self, reason: str) -> None:
        """Not counted here."""

    def breaker_opened(self, seconds: float) -> None:
        self.events.append(("opened", seconds))

    def breaker_closed(self) -> None:
        self.events.append(("closed", None))


@pytest.fixture
def clock() -> Sleeper:
    return Sleeper()


@pytest.fixture
def observer() -> Observer:
    return Observer()


@pytest.fixture
def gateway(tmp_path, twilio, clock, observer) -> TwilioRestGateway:
    settings = Settings.from_env(make_env(tmp_path, twilio, NOTIFY_DEADLINE_S="15"))
    return TwilioRestGateway(settings, sleep=clock.sleep, clock=clock, observer=observer)


def live_call(twilio) -> str:
    sid = new_call_sid()
    twilio.set_call(sid, "in-progress", from_="client:alice", to="+15005550006")
    return sid


def test_retry_after_is_waited_for_before_each_retry(gateway, twilio, clock):
    sid = live_call(twilio)
    twilio.fail_next(2, 429, retry_after=2)
    sent = gateway.send_message(sid, "{}", "key-1")
    assert sent.sid.startswith("KX")
    assert len(twilio.requests) == 3 and len(clock.slept) == 2
    assert all(s >= 2 for s in clock.slept)


def test_a_notify_under_429s_makes_three_requests_then_stops(gateway, twilio, clock,
                                                             observer):
    # The review's reproduction: one /notify made 16 requests in 14 s, ignoring Retry-After.
    sid = live_call(twilio)
    twilio.fail_next(1000, 429, retry_after=1)
    with pytest.raises(TwilioUnavailable) as failed:
        gateway.send_message(sid, "{}", "key-1")
    assert len(twilio.requests) == 3  # the third 429 in a row opened the breaker
    assert sum(clock.slept) >= 2
    assert failed.value.details.get("breaker") == "open"
    assert failed.value.headers == {"Retry-After": str(int(OPEN_S))}
    assert observer.events == [("opened", OPEN_S)]
    # While open: no request at all, for a message or a lookup, answered at once.
    with pytest.raises(TwilioUnavailable):
        gateway.send_message(sid, "{}", "key-2")
    with pytest.raises(TwilioUnavailable):
        gateway.fetch_call(new_call_sid())
    with pytest.raises(TwilioUnavailable):
        gateway.calls_for_client("alice")
    assert len(twilio.requests) == 3


def test_a_retry_after_beyond_the_deadline_gives_up_at_once_with_it(gateway, twilio, clock):
    sid = live_call(twilio)
    twilio.fail_next(1, 429, retry_after=40)
    with pytest.raises(TwilioUnavailable) as failed:
        gateway.send_message(sid, "{}", "key-1")
    assert len(twilio.requests) == 1 and clock.slept == []
    assert failed.value.headers == {"Retry-After": "40"}
    assert failed.value.details["twilio_status"] == 429


def test_after_the_pause_one_probe_closes_the_breaker_or_doubles_the_pause(gateway, twilio,
                                                                         clock, observer):
    sid = live_call(twilio)
    twilio.fail_next(3, 429, retry_after=0)
    with pytest.raises(TwilioUnavailable):
        gateway.send_message(sid, "{}", "key-1")
    clock.advance(OPEN_S)
    twilio.fail_next(1, 429, retry_after=0)
    with pytest.raises(TwilioUnavailable) as failed:  # the probe got a 429: a longer pause
        gateway.send_message(sid, "{}", "key-1")
    assert failed.value.headers == {"Retry-After": str(int(2 * OPEN_S))}
    clock.advance(2 * OPEN_S)
    assert gateway.send_message(sid, "{}", "key-1").sid.startswith("KX")  # closed again
    assert gateway.send_message(sid, "{}", "key-2").sid.startswith("KX")
    assert observer.events == [("opened", OPEN_S), ("opened", 2 * OPEN_S), ("closed", None)]
    assert len(twilio.requests) == 3 + 1 + 2


def test_subscriptions_are_not_refused_by_the_breaker_and_their_answers_count(gateway, twilio,
                                                                              observer):
    sid = live_call(twilio)
    twilio.fail_next(3, 429, retry_after=0)
    with pytest.raises(TwilioUnavailable):
        gateway.send_message(sid, "{}", "key-1")
    # A subscription has no one waiting: it is sent, and Twilio taking it closes the breaker.
    assert gateway.subscribe(sid, "https://relay.example.com/twilio/messages", "sub-1")
    assert gateway.send_message(sid, "{}", "key-2").sid.startswith("KX")
    assert observer.events == [("opened", OPEN_S), ("closed", None)]


def test_the_breaker_on_its_own():
    clock = FakeClock()
    breaker = Breaker(clock=clock)
    for status in (429, 429, 500, 429, 429):  # not three in a row
        breaker.check()
        breaker.record(status)
    assert not breaker.is_open
    breaker.record(429, retry_after_s=300)
    assert breaker.is_open  # for Twilio's Retry-After, up to the longest pause
    with pytest.raises(TwilioUnavailable) as refused:
        breaker.check()
    assert refused.value.headers == {"Retry-After": str(int(MAX_OPEN_S))}
    clock.advance(MAX_OPEN_S)
    breaker.check()  # the probe
    with pytest.raises(TwilioUnavailable) as waiting:
        breaker.check()  # others wait for the probe's answer
    assert waiting.value.headers == {"Retry-After": "1"}
    breaker.record(None)  # no answer (a timeout): the next request probes
    breaker.check()
    breaker.record(404)  # Twilio answered, without a 429: closed
    breaker.check()
    breaker.check()
    assert not breaker.is_open
