"""Retries toward Twilio: 429/5xx/connection failures retried with backoff within one deadline.

Twilio's Retry-After is honoured: a retry waits at least that long, and when that would pass
the deadline the request gives up at once (503 with Twilio's Retry-After) instead of asking
again early. Every answer is reported to the breaker (services/twilio/breaker.py), which
refuses requests outright while Twilio keeps answering 429.

Part of the Twilio adapter: it sees the SDK's exceptions and turns them into callrelay's own.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.response import Response

from services.errors import TwilioRefused, TwilioTimeout, TwilioUnavailable
from services.twilio.breaker import Breaker

log = logging.getLogger("callrelay.twilio")
T = TypeVar("T")
# A Retry-After beyond this is read as this: no request waits longer in any case.
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for 429/5xx/connection failures, bounded by a total deadline."""

    deadline_s: float = 15.0
    attempt_timeout_s: float = 10.0
    base_delay_s: float = 0.25
    max_delay_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


class _Retryable(Exception):
    def __init__(self, cause: Exception, status: int | None = None, code: int | None = None):
        super().__init__(str(cause))
        self.cause, self.status, self.code = cause, status, code


class Retrier:
    """Runs one Twilio operation with retries; each attempt's timeout fits the deadline."""

    def __init__(self, policy: RetryPolicy, set_attempt_timeout: Callable[[float | None], None],
                 *, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str], None] | None = None,
                 breaker: Breaker | None = None,
                 retry_after: Callable[[], float | None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.set_attempt_timeout = set_attempt_timeout
        self.sleep = sleep
        self.on_retry = on_retry
        self.breaker = breaker
        self.retry_after = retry_after  # Twilio's Retry-After on the last answer, in seconds
        self.clock = clock

    def run(self, operation: Callable[[], T], call_sid: str, what: str,
            deadline: float | None, *, gated: bool = True) -> T:
        """`operation`'s result, or the error that says why Twilio could not give it in time.

        `gated`: refused at once (503) while the breaker is open; a background task that may
        wait (a subscription) is not gated, but its answers still count.
        """
        if deadline is None:
            deadline = self.clock() + self.policy.deadline_s
        attempt = 0
        last: _Retryable | None = None
        try:
            while True:
                attempt += 1
                remaining = deadline - self.clock()
                if remaining < 0.1:
                    if last is not None:  # the backoff sleep overran: report what failed
                        raise _give_up(last, attempt - 1, what) from last.cause
                    raise TwilioTimeout(f"No time was left to {what} before the deadline.",
                                        attempts=0)
                if gated and self.breaker is not None:
                    self.breaker.check()
                self.set_attempt_timeout(min(self.policy.attempt_timeout_s, remaining))
                try:
                    result = _attempt(operation, what)
                except TwilioRefused as refused:
                    refused.details["attempts"] = attempt  # as the other errors say theirs
                    self._record(refused.details.get("twilio_status"))
                    raise
                except _Retryable as failure:
                    last = failure
                    wait_s = self.retry_after() if failure.status is not None else None
                    self._record(failure.status, wait_s)
                    if gated and self.breaker is not None and self.breaker.is_open:
                        self.breaker.check()  # this 429 opened it: no point waiting
                    delay = max(self.policy.delay(attempt), wait_s or 0.0)
                    if self.clock() + delay + 0.1 >= deadline:
                        raise _give_up(failure, attempt, what, wait_s) from failure.cause
                    log.warning("twilio attempt failed, retrying", extra={
                        "call_sid": call_sid, "attempt": attempt,
                        "twilio_status": failure.status, "retry_in_s": round(delay, 2)})
                    if self.on_retry is not None:
                        self.on_retry(_reason(failure))
                    self.sleep(delay)
                else:
                    self._record(200)
                    return result
        finally:
            self.set_attempt_timeout(None)

    def _record(self, status: object, retry_after_s: float | None = None) -> None:
        if self.breaker is not None:
            self.breaker.record(status if isinstance(status, int) else None, retry_after_s)


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After (seconds, or an HTTP date) in seconds from now; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(MAX_RETRY_AFTER_S, float(value))
    try:
        seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _status_and_code(exc: TwilioException) -> tuple[int | None, int | None, str]:
    if isinstance(exc, TwilioRestException):
        return exc.status, exc.code, exc.msg
    if isinstance(exc, TwilioServiceException):
        return exc.status, exc.code, exc.detail or exc.title
    # A failed page of a list is a bare TwilioException("Unable to fetch page", response).
    response = next((arg for arg in exc.args if isinstance(arg, Response)), None)
    if response is not None:
        code, message = _error_body(response.text)
        return response.status_code, code, message or str(exc.args[0])
    return None, None, exc.__class__.__name__


def _error_body(text: str) -> tuple[int | None, str | None]:
    """Twilio's error code and message from an error body, when it is Twilio's JSON."""
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("code"), body.get("message")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None,
            message if isinstance(message, str) else None)


def _attempt(operation: Callable[[], T], what: str) -> T:
    try:
        return operation()
    except TwilioException as exc:
        status, code, message = _status_and_code(exc)
        if status is not None and (status == 429 or status >= 500):
            raise _Retryable(exc, status, code) from exc
        raise TwilioRefused(f"Twilio refused to {what}: {message}",
                            twilio_status=status, twilio_code=code) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise _Retryable(exc) from exc


def _reason(failure: _Retryable) -> str:
    if failure.status is not None:
        return str(failure.status)
    return "timeout" if isinstance(failure.cause, requests.Timeout) else "connection"


def _give_up(failure: _Retryable, attempts: int, what: str,
             retry_after_s: float | None = None) -> Exception:
    if isinstance(failure.cause, requests.Timeout):
        return TwilioTimeout(f"Twilio did not answer in time; could not {what}.",
                             attempts=attempts)
    if failure.status is None:
        return TwilioUnavailable(f"Twilio could not be reached; could not {what}.",
                                 attempts=attempts)
    extra = {"retry_after_s": max(1, math.ceil(retry_after_s))} if retry_after_s else {}
    return TwilioUnavailable(f"Twilio is overloaded or failing; could not {what}.",
                             twilio_status=failure.status, twilio_code=failure.code,
                             attempts=attempts, **extra)
