"""Retrier: what is retried, after which delays, within which deadline, and what it reports.

Time is a fake clock that the Retrier's sleeps (and each attempt, by its `takes_s`) advance.
The backoff's jitter is pinned to its upper bound, so every delay below is the schedule a
reader can check by hand: 0.25, 0.5, 1, 2, 2, … seconds. Every expectation is written out.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from services.errors import TwilioRefused, TwilioTimeout, TwilioUnavailable
from services.twilio.breaker import Breaker
from services.twilio.retries import (
    MAX_RETRY_AFTER_S,
    Retrier,
    RetryPolicy,
    retry_after_seconds,
)
from tests.support.clock import FakeClock

T0 = 1000.0
POLICY = RetryPolicy(deadline_s=15.0, attempt_timeout_s=10.0, base_delay_s=0.25, max_delay_s=2.0)


@pytest.fixture(autouse=True)
def widest_jitter(monkeypatch):
    """Full jitter draws from [0, cap]: take the cap, and record each range asked for."""
    ranges: list[tuple[float, float]] = []

    def upper(low: float, high: float) -> float:
        ranges.append((low, high))
        return high

    monkeypatch.setattr(random, "uniform", upper)
    return ranges


def rest(status: int, code: int | None = None) -> TwilioRestException:
    return TwilioRestException(status, "https://api.twilio.com/x", msg=f"status {status}",
                               code=code)


@dataclass
class Outcome:
    """One attempt: how long it takes on the clock, then what it raises (None: it succeeds)."""

    error: Exception | None = None
    takes_s: float = 0.0


class Scene:
    """A Retrier over a fake clock, a scripted operation and a breaker that records."""

    def __init__(self, *outcomes: Outcome, policy: RetryPolicy = POLICY,
                 retry_after: float | None = None, oversleep_s: float = 0.0,
                 breaker: Breaker | None = None, start: float = T0) -> None:
        self.clock = FakeClock(now=start)
        self.outcomes = list(outcomes)
        self.timeouts: list[float | None] = []
        self.slept: list[float] = []
        self.retries: list[str] = []
        self.calls = 0
        self.oversleep_s = oversleep_s
        self.breaker = breaker or RecordingBreaker(self.clock)
        self.retrier = Retrier(policy, self.timeouts.append, sleep=self.sleep,
                               on_retry=self.retries.append, breaker=self.breaker,
                               retry_after=lambda: retry_after, clock=self.clock)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock.advance(seconds + self.oversleep_s)

    def operation(self) -> str:
        outcome = self.outcomes[self.calls]
        self.calls += 1
        self.clock.advance(outcome.takes_s)
        if outcome.error is not None:
            raise outcome.error
        return "answer"

    def run(self, deadline: float | None = None, *, gated: bool = True) -> str:
        return self.retrier.run(self.operation, "CA1", "fetch the call", deadline, gated=gated)


class RecordingBreaker(Breaker):
    """The real breaker, recording what the Retrier told it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.recorded: list[tuple[int | None, float | None]] = []

    def record(self, status: int | None, retry_after_s: float | None = None) -> None:
        self.recorded.append((status, retry_after_s))
        super().record(status, retry_after_s)


# --- the backoff schedule -------------------------------------------------------------------

@pytest.mark.parametrize(("attempt", "cap"), [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 2.0)])
def test_full_jitter_draws_between_zero_and_the_doubling_cap(widest_jitter, attempt, cap):
    assert POLICY.delay(attempt) == cap
    assert widest_jitter == [(0, cap)]


def test_the_default_policy():
    assert RetryPolicy() == POLICY


# --- success and what is retried ------------------------------------------------------------

def test_first_answer_returned_with_one_attempt_timeout_then_cleared():
    scene = Scene(Outcome())
    assert scene.run() == "answer"
    assert scene.timeouts == [10.0, None]
    assert scene.slept == []
    assert scene.breaker.recorded == [(200, None)]


@pytest.mark.parametrize(("error", "reason"), [
    (rest(429), "429"),
    (rest(500), "500"),
    (rest(503), "503"),
    (requests.Timeout("read timed out"), "timeout"),
    (requests.ConnectionError("refused"), "connection"),
])
def test_retried_failures(error, reason):
    scene = Scene(Outcome(error), Outcome(error), Outcome())
    assert scene.run() == "answer"
    assert scene.calls == 3
    assert scene.slept == [0.25, 0.5]
    assert scene.retries == [reason, reason]


@pytest.mark.parametrize(("status", "code"), [(400, 21211), (401, 20003), (404, 20404),
                                              (409, None), (499, None)])
def test_refusals_are_not_retried(status, code):
    scene = Scene(Outcome(rest(status, code)))
    with pytest.raises(TwilioRefused) as refused:
        scene.run()
    assert scene.calls == 1
    assert scene.slept == []
    assert refused.value.message == f"Twilio refused to fetch the call: status {status}"
    assert refused.value.details == {"twilio_status": status, "twilio_code": code, "attempts": 1}
    assert scene.breaker.recorded == [(status, None)]
    assert scene.timeouts == [10.0, None]


def test_a_refusal_after_retries_reports_its_attempt():
    scene = Scene(Outcome(rest(503)), Outcome(rest(404, 20404)))
    with pytest.raises(TwilioRefused) as refused:
        scene.run()
    assert refused.value.details["attempts"] == 2
    assert scene.breaker.recorded == [(503, None), (404, None)]


def test_a_refusal_without_a_status_is_recorded_as_no_answer():
    scene = Scene(Outcome(TwilioException("Unable to fetch page")))
    with pytest.raises(TwilioRefused) as refused:
        scene.run()
    assert refused.value.message == "Twilio refused to fetch the call: TwilioException"
    assert refused.value.details == {"twilio_status": None, "twilio_code": None, "attempts": 1}
    assert scene.breaker.recorded == [(None, None)]


# --- attempt timeouts within the deadline ----------------------------------------------------

def test_each_attempt_timeout_is_capped_by_what_is_left_of_the_deadline():
    # t=0 attempt 1 (10 s allowed) fails at t=4; sleeps 0.25; attempt 2 at 4.25 has 10.75
    # left (10 allowed), fails at 8.25; sleeps 0.5; attempt 3 at 8.75 has 6.25 left.
    scene = Scene(Outcome(rest(503), 4.0), Outcome(rest(503), 4.0), Outcome())
    assert scene.run() == "answer"
    assert scene.timeouts == [10.0, 10.0, 6.25, None]


def test_without_a_deadline_the_policy_gives_one():
    scene = Scene(Outcome(), policy=RetryPolicy(deadline_s=3.0))
    scene.run()
    assert scene.timeouts == [3.0, None]


def test_a_given_deadline_is_used_as_it_is():
    scene = Scene(Outcome())
    scene.run(deadline=T0 + 2.5)
    assert scene.timeouts == [2.5, None]


def test_a_tenth_of_a_second_left_is_still_tried():
    scene = Scene(Outcome(), start=0.0)  # 0.1 - 0.0 is exactly 0.1 (1000.1 - 1000 is not)
    assert scene.run(deadline=0.1) == "answer"
    assert scene.timeouts == [0.1, None]


def test_no_time_left_gives_up_before_asking():
    scene = Scene(Outcome())
    with pytest.raises(TwilioTimeout) as timeout:
        scene.run(deadline=T0 + 0.09)
    assert scene.calls == 0
    assert timeout.value.message == "No time was left to fetch the call before the deadline."
    assert timeout.value.details == {"attempts": 0}
    assert scene.timeouts == [None]


# --- giving up: which error, how many attempts ----------------------------------------------

def test_gives_up_when_the_next_wait_would_pass_the_deadline():
    # Fails at t=5 (sleep 0.25), at 10.25 (sleep 0.5), at 15.75: the next wait ends past 15.
    last = rest(503, 20500)
    scene = Scene(Outcome(rest(503, 20500), 5.0), Outcome(rest(503, 20500), 5.0),
                  Outcome(last, 5.0))
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert unavailable.value.__cause__ is last  # Twilio's own error, for the log's traceback
    assert scene.calls == 3
    assert scene.slept == [0.25, 0.5]
    assert scene.timeouts == [10.0, 9.75, 4.25, None]
    assert unavailable.value.message == "Twilio is overloaded or failing; could not fetch the call."
    assert unavailable.value.details == {"twilio_status": 503, "twilio_code": 20500,
                                         "attempts": 3}
    assert unavailable.value.headers == {"Retry-After": "5"}  # Twilio gave none: the default


def test_gives_up_when_the_wait_ends_within_a_tenth_of_the_deadline():
    # After the first failure at t=14.6 the wait of 0.25 would end 0.15 s before the deadline.
    scene = Scene(Outcome(rest(500), 14.65), Outcome())
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert unavailable.value.details["attempts"] == 1
    assert scene.slept == []


def test_retries_when_the_wait_ends_more_than_a_tenth_before_the_deadline():
    scene = Scene(Outcome(rest(500), 14.6), Outcome())
    assert scene.run() == "answer"
    assert scene.slept == [0.25]


def test_timeouts_give_up_as_a_timeout():
    scene = Scene(*[Outcome(requests.Timeout("read"), 10.0)] * 3)
    with pytest.raises(TwilioTimeout) as timeout:
        scene.run()
    assert isinstance(timeout.value.__cause__, requests.Timeout)
    assert timeout.value.message == "Twilio did not answer in time; could not fetch the call."
    assert timeout.value.details == {"attempts": 2}
    assert scene.breaker.recorded == [(None, None), (None, None)]


def test_connection_failures_give_up_as_unreachable():
    scene = Scene(*[Outcome(requests.ConnectionError("refused"), 10.0)] * 3)
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert unavailable.value.message == "Twilio could not be reached; could not fetch the call."
    assert unavailable.value.details == {"attempts": 2}


def test_a_sleep_that_overran_the_deadline_reports_the_last_failure():
    scene = Scene(Outcome(rest(502)), Outcome(), oversleep_s=20.0)
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert scene.calls == 1
    assert unavailable.value.message == "Twilio is overloaded or failing; could not fetch the call."
    assert unavailable.value.details == {"twilio_status": 502, "twilio_code": None,
                                         "attempts": 1}


# --- Twilio's Retry-After -------------------------------------------------------------------

def test_retry_after_is_waited_when_longer_than_the_backoff():
    scene = Scene(Outcome(rest(429)), Outcome(), retry_after=3.0)
    assert scene.run() == "answer"
    assert scene.slept == [3.0]
    assert scene.breaker.recorded == [(429, 3.0), (200, None)]


def test_backoff_is_waited_when_longer_than_retry_after():
    scene = Scene(Outcome(rest(503)), Outcome(rest(503)), Outcome(rest(503)), Outcome(),
                  retry_after=0.3)
    scene.run()
    assert scene.slept == [0.3, 0.5, 1.0]


def test_retry_after_past_the_deadline_gives_up_at_once_and_passes_it_on():
    scene = Scene(Outcome(rest(429)), Outcome(), retry_after=19.2)
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert scene.calls == 1
    assert scene.slept == []
    assert unavailable.value.details == {"twilio_status": 429, "twilio_code": None,
                                         "attempts": 1}
    assert unavailable.value.headers == {"Retry-After": "20"}


def test_a_short_retry_after_is_passed_on_as_one_second():
    scene = Scene(Outcome(rest(429), 14.7), Outcome(), retry_after=0.2)
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert unavailable.value.headers == {"Retry-After": "1"}


def test_retry_after_is_not_read_for_a_failure_without_an_answer():
    scene = Scene(Outcome(requests.ConnectionError("refused")), Outcome(), retry_after=9.0)
    scene.run()
    assert scene.slept == [0.25]
    assert scene.breaker.recorded == [(None, None), (200, None)]


# --- the breaker ----------------------------------------------------------------------------

def after_429s(scene: Scene, count: int) -> Scene:
    """The scene with `count` 429s in a row already told to its breaker (three open it)."""
    for _ in range(count):
        scene.breaker.record(429)
    return scene


def test_an_open_breaker_refuses_before_asking_twilio():
    scene = after_429s(Scene(Outcome()), 3)
    with pytest.raises(TwilioUnavailable):
        scene.run()
    assert scene.calls == 0
    assert scene.timeouts == [None]


def test_an_ungated_run_asks_twilio_while_the_breaker_is_open():
    scene = after_429s(Scene(Outcome()), 3)
    assert scene.run(gated=False) == "answer"
    assert scene.calls == 1


def test_a_429_that_opens_the_breaker_stops_the_retries_at_once():
    scene = after_429s(Scene(Outcome(rest(429)), Outcome()), 2)
    with pytest.raises(TwilioUnavailable) as unavailable:
        scene.run()
    assert scene.calls == 1
    assert scene.slept == []
    assert unavailable.value.code == "twilio_unavailable"


def test_an_ungated_run_keeps_retrying_through_an_open_breaker():
    scene = after_429s(Scene(Outcome(rest(429)), Outcome()), 2)
    assert scene.run(gated=False) == "answer"
    assert scene.slept == [0.25]


def test_without_a_breaker_nothing_is_recorded():
    clock = FakeClock(now=T0)
    timeouts: list[float | None] = []
    retrier = Retrier(POLICY, timeouts.append, sleep=clock.advance, clock=clock)
    answers = iter([rest(503), None])

    def operation() -> str:
        error = next(answers)
        if error is not None:
            raise error
        return "answer"

    assert retrier.run(operation, "CA1", "fetch the call", None) == "answer"
    assert timeouts == [10.0, 10.0, None]


# --- what is logged -------------------------------------------------------------------------

def test_each_retry_is_logged_with_the_call_and_the_wait(caplog):
    scene = Scene(Outcome(rest(503)), Outcome())
    with caplog.at_level(logging.WARNING, logger="callrelay.twilio"):
        scene.run()
    [record] = caplog.records
    assert record.getMessage() == "twilio attempt failed, retrying"
    assert (record.call_sid, record.attempt, record.twilio_status, record.retry_in_s) == (
        "CA1", 1, 503, 0.25)


# --- reading Twilio's errors ----------------------------------------------------------------

def page_error(status: int, body: str) -> TwilioException:
    return TwilioException("Unable to fetch page", Response(status, body))


@pytest.mark.parametrize(("error", "status", "code", "message"), [
    (TwilioServiceException("https://x", "Bad", 400, 21211, detail="Not a number"),
     400, 21211, "Not a number"),
    (TwilioServiceException("https://x", "Bad title", 400, 21211), 400, 21211, "Bad title"),
    (page_error(404, '{"code": 20404, "message": "Not found"}'), 404, 20404, "Not found"),
    (page_error(404, '{"code": true, "message": 7}'), 404, None, "Unable to fetch page"),
    (page_error(404, '["not", "an", "object"]'), 404, None, "Unable to fetch page"),
    (page_error(404, "<html>gateway</html>"), 404, None, "Unable to fetch page"),
])
def test_refusals_carry_twilios_status_code_and_message(error, status, code, message):
    scene = Scene(Outcome(error))
    with pytest.raises(TwilioRefused) as refused:
        scene.run()
    assert refused.value.message == f"Twilio refused to fetch the call: {message}"
    assert refused.value.details == {"twilio_status": status, "twilio_code": code, "attempts": 1}


def test_a_failed_page_with_a_5xx_is_retried():
    scene = Scene(Outcome(page_error(503, '{"code": 20503}')), Outcome())
    assert scene.run() == "answer"
    assert scene.retries == ["503"]


# --- Retry-After headers --------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [
    (None, None),
    ("", None),
    ("7", 7.0),
    (" 12 ", 12.0),
    ("0", 0.0),
    ("300", 300.0),
    ("301", MAX_RETRY_AFTER_S),
    ("86400", MAX_RETRY_AFTER_S),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),   # a date in the past: no wait
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER_S),
    ("-5", None),
    ("soon", None),
    ("\u0663", None),                          # a digit, but not an ASCII one
])
def test_retry_after_header(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_the_logged_wait_is_rounded_to_hundredths(caplog):
    scene = Scene(Outcome(rest(429)), Outcome(), retry_after=1.2345)
    with caplog.at_level(logging.WARNING, logger="callrelay.twilio"):
        scene.run()
    [record] = caplog.records
    assert record.retry_in_s == 1.23
