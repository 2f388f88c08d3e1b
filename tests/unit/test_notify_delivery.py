"""Delivery to several legs: per-leg keys, every leg tried, which error answers when all fail."""

from __future__ import annotations

import contextvars
import hashlib
import threading
import time

import pytest

from services.errors import RelayError, TwilioRefused, TwilioTimeout, TwilioUnavailable
from services.legs.model import Leg, LegEvent
from services.twilio.port import SentMessage
from services.use_cases.notify_delivery import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    Attempt,
    Failure,
    deliver,
    leg_key,
)

A, B, C = ("CA" + ch * 32 for ch in "abc")
# What a request's log records carry (its id): the sends must see the caller's.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


class ScriptedTwilio:
    """Answers send_message from a script per leg; records (call_sid, key).

    With `together=n`, each send waits (up to a generous deadline) until n sends are under way
    at once: sends made one after the other break the barrier and fail the test.
    """

    def __init__(self, script: dict[str, RelayError | None], together: int = 0) -> None:
        self.script = script
        self.together = threading.Barrier(together) if together else None
        self.sent: list[tuple[str, str | None]] = []
        self.contents: list[str] = []
        self.deadlines: list[float | None] = []
        self.threads: set[str] = set()
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        with self._lock:
            self.sent.append((call_sid, idempotency_key))
            self.contents.append(content)
            self.deadlines.append(deadline)
            self.threads.add(threading.current_thread().name)
            self.requests.append(REQUEST_ID.get())
        if self.together is not None:
            self.together.wait(timeout=30)  # BrokenBarrierError (not a RelayError) if serial
        error = self.script.get(call_sid)
        if error is not None:
            raise error
        return SentMessage(sid="KX" + call_sid[2:], call_sid=call_sid, account_sid="AC",
                           date_created=None)

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        raise AssertionError("not used")

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        raise AssertionError("not used")

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        raise AssertionError("not used")

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        raise AssertionError("not used")


def legs(*sids: str) -> list[Leg]:
    return [Leg(call_sid=sid, status="in-progress", identity="erin") for sid in sids]


def refused() -> TwilioRefused:
    return TwilioRefused("refused", twilio_status=400, twilio_code=21220)


def unavailable() -> TwilioUnavailable:
    return TwilioUnavailable("busy", twilio_status=503, twilio_code=20503)


def later() -> float:
    return time.monotonic() + 5


def test_leg_keys_are_a_function_of_the_key_and_the_leg() -> None:
    assert leg_key("k", A) == f"k:{A}" and leg_key(None, A) is None
    long = "x" * MAX_IDEMPOTENCY_KEY_CHARS
    assert leg_key(long, A) == leg_key(long, A) != leg_key(long, B)
    assert len(leg_key(long, A) or "") <= MAX_IDEMPOTENCY_KEY_CHARS
    assert leg_key(long, A) != leg_key(long[:-1] + "y", A)


def test_every_leg_is_tried_and_the_failures_reported() -> None:
    twilio = ScriptedTwilio({A: refused()})
    delivery = deliver(twilio, legs(C, A, B), "{}", "k", per_leg_keys=True, deadline=later())
    assert sorted(twilio.sent) == [(A, f"k:{A}"), (B, f"k:{B}"), (C, f"k:{C}")]
    assert [leg.call_sid for leg, _ in delivery.sent] == [B, C]
    assert [(f.leg.call_sid, f.error.code) for f in delivery.failed] == [(A, "twilio_refused")]


def test_the_plain_key_when_asked() -> None:
    twilio = ScriptedTwilio({})
    deliver(twilio, legs(A), "{}", "k", per_leg_keys=False, deadline=later())
    assert twilio.sent == [(A, "k")]


@pytest.mark.parametrize("script, expected", [
    ({A: refused(), B: refused()}, "twilio_refused"),
    # A retry may cure B's failure, not A's: the caller is told to retry.
    ({A: refused(), B: unavailable()}, "twilio_unavailable"),
    ({A: TwilioTimeout("slow"), B: unavailable()}, "twilio_timeout"),
])
def test_when_no_leg_got_it_the_error_is_chosen_deterministically(script, expected) -> None:
    for order in ([A, B], [B, A]):
        with pytest.raises(RelayError) as raised:
            deliver(ScriptedTwilio(script), legs(*order), "{}", None, per_leg_keys=True,
                    deadline=later())
        assert raised.value.code == expected


def test_legs_are_sent_to_in_parallel() -> None:
    twilio = ScriptedTwilio({}, together=3)
    delivery = deliver(twilio, legs(A, B, C), "{}", None, per_leg_keys=True, deadline=later())
    assert [leg.call_sid for leg, _ in delivery.sent] == [A, B, C]
    assert len(twilio.threads) == 3
    assert all(name.startswith("notify") for name in twilio.threads)


def test_one_leg_is_sent_to_from_the_callers_thread() -> None:
    twilio = ScriptedTwilio({})
    deliver(twilio, legs(A), "{}", None, per_leg_keys=True, deadline=later())
    assert twilio.threads == {threading.current_thread().name}


def test_every_leg_gets_the_content_and_the_deadline() -> None:
    twilio = ScriptedTwilio({})
    deliver(twilio, legs(B, A), '{"x":1}', None, per_leg_keys=True, deadline=1234.5)
    assert twilio.contents == ['{"x":1}', '{"x":1}']
    assert twilio.deadlines == [1234.5, 1234.5]


def test_a_key_near_the_limit_is_replaced_by_its_digest() -> None:
    fits = "k" * (MAX_IDEMPOTENCY_KEY_CHARS - 35)  # + ":" + 34-character SID = the limit
    assert leg_key(fits, A) == f"{fits}:{A}"
    over = fits + "k"
    assert leg_key(over, A) == f"{hashlib.sha256(over.encode()).hexdigest()}:{A}"


def test_what_is_recorded_before_answering() -> None:
    recorded: list[list[Attempt]] = []
    failure = refused()
    twilio = ScriptedTwilio({B: failure})
    delivery = deliver(twilio, legs(B, A), "{}", "k", per_leg_keys=True, deadline=later(),
                       record=recorded.append)
    [attempts] = recorded
    assert [(a.leg.call_sid, a.idempotency_key) for a in attempts] == [(A, f"k:{A}"),
                                                                      (B, f"k:{B}")]
    assert attempts[0].outcome == delivery.sent[0][1]
    assert attempts[1].outcome is failure
    assert delivery.failed == [Failure(legs(B)[0], failure)]


def test_the_first_retryable_failure_in_sid_order_is_the_answer() -> None:
    first, second = unavailable(), TwilioTimeout("slow")
    with pytest.raises(RelayError) as raised:
        deliver(ScriptedTwilio({C: refused(), B: second, A: first}), legs(C, B, A), "{}",
                None, per_leg_keys=True, deadline=later())
    assert raised.value is first
    only_refusals = [refused(), refused()]
    with pytest.raises(RelayError) as raised:
        deliver(ScriptedTwilio({B: only_refusals[1], A: only_refusals[0]}), legs(B, A), "{}",
                None, per_leg_keys=True, deadline=later())
    assert raised.value is only_refusals[0]


def test_no_leg_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"^deliver needs at least one leg; the caller "
                                          r"explains why there is none$"):
        deliver(ScriptedTwilio({}), [], "{}", None, per_leg_keys=True, deadline=later())


def test_the_sends_run_in_the_callers_context() -> None:
    twilio = ScriptedTwilio({})
    token = REQUEST_ID.set("req-1")
    try:
        deliver(twilio, legs(A, B, C), "{}", None, per_leg_keys=True, deadline=later())
    finally:
        REQUEST_ID.reset(token)
    assert twilio.requests == ["req-1"] * 3


def test_up_to_eight_legs_are_sent_to_at_once() -> None:
    eight = ["CA" + f"{n:x}" * 32 for n in range(8)]
    twilio = ScriptedTwilio({}, together=8)
    delivery = deliver(twilio, legs(*eight), "{}", None, per_leg_keys=True, deadline=later())
    assert len(delivery.sent) == 8 and len(twilio.threads) == 8
