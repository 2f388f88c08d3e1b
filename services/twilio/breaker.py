"""A circuit breaker for Twilio's 429s: while Twilio says "too many requests", stop asking.

Twilio answers 429 when the account has too many REST requests in flight. Retrying each one
on its own (as every /notify did) only adds to them. After a few 429s in a row the breaker
opens: requests that can wait for nothing (lookups, /notify) are refused at once, with a
Retry-After, for Twilio's Retry-After or a growing pause. Then one request probes: an answer
that is not a 429 closes the breaker, a 429 opens it again for longer. Per process.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

from services.errors import TwilioUnavailable

# 429s in a row (from any request of this process) that open the breaker.
THRESHOLD = 3
# The first pause without a Retry-After, doubled at each failed probe up to the longest.
OPEN_S = 5.0
MAX_OPEN_S = 60.0
# A probe that never reported (its request was abandoned) stops blocking others after this.
PROBE_S = 15.0


class BreakerObserver(Protocol):
    """What the breaker reports, through an optional hook, for the metrics."""

    def breaker_opened(self, seconds: float) -> None:
        """The breaker opened for `seconds`."""
        ...

    def breaker_closed(self) -> None:
        """A probe was answered without a 429: requests go to Twilio again."""
        ...


class Breaker:
    """Counts Twilio's 429s; refuses requests while open; lets one probe through after."""

    def __init__(self, *, threshold: int = THRESHOLD, open_s: float = OPEN_S,
                 max_open_s: float = MAX_OPEN_S, clock: Callable[[], float] = time.monotonic,
                 observer: BreakerObserver | None = None) -> None:
        self.threshold, self.open_s, self.max_open_s = threshold, open_s, max_open_s
        self.clock = clock
        self.observer = observer
        self._lock = threading.Lock()
        self._in_a_row = 0
        self._pause = open_s
        self._open_until: float | None = None  # None: closed
        self._probe_since: float | None = None

    def check(self) -> None:
        """Return when a request may go to Twilio now; TwilioUnavailable (503) while open."""
        with self._lock:
            if self._open_until is None:
                return
            now = self.clock()
            if now < self._open_until:
                wait_s = self._open_until - now
            elif self._probe_since is None or now - self._probe_since > PROBE_S:
                self._probe_since = now  # this request is the probe
                return
            else:
                wait_s = 1.0  # a probe is out: its answer decides
        raise TwilioUnavailable(
            "Twilio is answering 429 (too many requests) to this account: callrelay pauses its "
            "requests; retry after the Retry-After.", retry_after_s=max(1, math.ceil(wait_s)),
            breaker="open")

    def record(self, status: int | None, retry_after_s: float | None = None) -> None:
        """Twilio answered `status` (None: no answer, a timeout or connection failure)."""
        opened = closed = None
        with self._lock:
            probing = self._probe_since is not None
            self._probe_since = None
            if status == 429:
                self._in_a_row += 1
                if probing or (self._open_until is None and self._in_a_row >= self.threshold):
                    if probing:
                        self._pause = min(self.max_open_s, self._pause * 2)
                    opened = min(self.max_open_s, max(self._pause, retry_after_s or 0.0))
                    self._open_until = self.clock() + opened
            elif status is not None:
                closed = self._open_until is not None
                self._in_a_row, self._pause, self._open_until = 0, self.open_s, None
        if self.observer is not None and opened is not None:
            self.observer.breaker_opened(opened)
        if self.observer is not None and closed:
            self.observer.breaker_closed()

    @property
    def is_open(self) -> bool:
        """True while requests are refused (not counting a probe's turn)."""
        with self._lock:
            return self._open_until is not None and self.clock() < self._open_until
