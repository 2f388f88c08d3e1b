"""Delivers outbox events to FORWARD_URL, signed the Standard Webhooks way, on a worker thread."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from standardwebhooks import Webhook

from services.errors import StoreUnavailable
from services.forwarding.events import strict_body
from services.store.history import DEAD, FORWARDED
from services.store.outbox import Outbox, OutboxEvent

if TYPE_CHECKING:
    import requests
# `requests` itself is imported where an event is delivered: a worker without FORWARD_URL
# never loads it (about 5 MiB, BENCHMARKS.md).

log = logging.getLogger("callrelay.forwarder")
# Told when an event is settled: (event, FORWARDED or DEAD, attempts, the last error or None).
Settled = Callable[[OutboxEvent, str, int, str | None], None]
# Why an attempt failed, as metrics count it: a fixed set, whatever the backend answers.
FAILURE_REASONS = ("http_3xx", "http_4xx", "http_5xx", "timeout", "connection", "other")


class DeliveryObserver(Protocol):
    """What the forwarder reports, through an optional hook, about its work (metrics)."""

    def forward_attempt(self, failure: str | None, seconds: float) -> None:
        """One delivery attempt ended: `failure` is None when accepted, else a FAILURE_REASONS."""
        ...

    def forward_dead(self) -> None:
        """An event failed its last attempt and moved to the dead list."""
        ...

    def store_error(self, source: str) -> None:
        """The store could not be reached (`source`: who noticed, here `forwarding`)."""
        ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between delivery attempts, capped, with jitter (half to full)."""

    base_s: float = 10.0
    cap_s: float = 1200.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failed attempt (1-based)."""
        longest = min(self.cap_s, self.base_s * 2 ** min(failures - 1, 32))
        return random.uniform(longest / 2, longest)


@dataclass(frozen=True)
class DeliveryOptions:
    """Timings of delivery; the defaults spread 10 attempts over roughly an hour."""

    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int = 10
    lease_s: float = 60.0  # longer than a delivery can take, so a lease only lapses on a crash
    poll_s: float = 1.0  # how often other workers' and instances' events are looked for
    timeout_s: float = 10.0
    batch: int = 20
    # Failed attempts during which an event holds its call's later events. A backend that
    # refuses an event (a 4xx) more often than this has refused it for good: the event is set
    # aside and retried on its own, and the call's later events go on. Other failures (5xx,
    # timeouts) mean the backend is down for every event, and hold the call's events in order.
    hold_attempts: int = 1


def signed_headers(secrets: str | Sequence[str], event_id: str, body: str, at: float
                   ) -> dict[str, str]:
    """The Standard Webhooks headers (webhook-id, -timestamp, -signature) for one attempt,
    signed with each secret (current first): a receiver holding any one of them verifies."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if not keys:
        raise ValueError("at least one secret is needed to sign an event")
    stamp = datetime.fromtimestamp(int(at), UTC)
    # Standard Webhooks: several signatures, space-separated, each "v1,<base64>".
    signatures = " ".join(Webhook(key).sign(event_id, stamp, body) for key in keys)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at)),
            "webhook-signature": signatures}


def failure_reason(status: int | None, exc: Exception | None = None) -> str:
    """The FAILURE_REASONS label of a failed attempt: the answer's status class, or why none."""
    if exc is not None:
        import requests

        if isinstance(exc, requests.Timeout):  # before ConnectionError: ConnectTimeout is both
            return "timeout"
        # A connection refused, reset, or cut while the answer was read.
        broken = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
        return "connection" if isinstance(exc, broken) else "other"
    if status is not None and 300 <= status < 600:
        return f"http_{status // 100}xx"
    return "other"


class Forwarder:
    """One delivery thread per process: leases due events, posts them, acks or backs off."""

    def __init__(self, outbox: Outbox, url: str, secrets: str | Sequence[str],
                 options: DeliveryOptions | None = None, *,
                 clock: Callable[[], float] = time.time,
                 observer: DeliveryObserver | None = None,
                 on_settled: Settled | None = None) -> None:
        self.outbox, self.url = outbox, url
        self._secrets = (secrets,) if isinstance(secrets, str) else tuple(secrets)
        self.on_settled = on_settled
        self.options = options or DeliveryOptions()
        self.clock = clock
        self.observer = observer
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self._wake = threading.Event()

    def start(self) -> None:
        """Start the thread unless it runs in this process (a forked child starts its own)."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if alive and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self.owner = f"{socket.gethostname()}:{self._pid}:{uuid.uuid4().hex[:8]}"
            self._stop, self._wake = threading.Event(), threading.Event()
            self._thread = threading.Thread(target=self._run, name="callrelay-forwarder",
                                            daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due events now (an event was just queued) instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the thread after the delivery in progress; unfinished events stay queued."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        import requests

        session = requests.Session()
        try:
            while not self._stop.is_set():
                try:
                    handled = self.run_once(session)
                except StoreUnavailable:
                    log.warning("outbox unreachable; retrying shortly")
                    if self.observer is not None:
                        self.observer.store_error("forwarding")
                    handled = 0
                except Exception:
                    log.exception("forwarder failed unexpectedly; retrying shortly")
                    handled = 0
                if handled == 0:
                    self._wake.wait(self.options.poll_s)
                    self._wake.clear()
        finally:
            session.close()
            self.outbox.close()  # this thread's connection

    def run_once(self, session: requests.Session) -> int:
        """Deliver one batch of due events (each its stream's head); returns how many."""
        events = self.outbox.lease(self.owner, self.options.lease_s, self.options.batch)
        for event in events:
            if self._stop.is_set():
                break  # the rest keep their lease until it lapses, then are retaken
            self._deliver(session, event)
        return len(events)

    def _deliver(self, session: requests.Session, event: OutboxEvent) -> None:
        import requests

        # Events queued before content was checked may hold NaN: sent as strict JSON too.
        body = strict_body(event.body) or event.body
        headers = {"Content-Type": "application/json", "User-Agent": "callrelay",
                   **signed_headers(self._secrets, event.id, body, self.clock())}
        timeout = self.options.timeout_s
        started = time.monotonic()
        refused = False
        try:
            answer = session.post(self.url, data=body.encode(), headers=headers,
                                  timeout=(min(3.0, timeout), timeout), allow_redirects=False)
            answer.close()
            accepted = 200 <= answer.status_code < 300
            error = None if accepted else f"HTTP {answer.status_code}"
            reason = None if accepted else failure_reason(answer.status_code)
            refused = 400 <= answer.status_code < 500 and answer.status_code not in (408, 429)
        except requests.RequestException as exc:
            error, reason = exc.__class__.__name__, failure_reason(None, exc)
        if self.observer is not None:
            self.observer.forward_attempt(reason, time.monotonic() - started)
        attempt = event.attempts + 1
        fields = {"event_id": event.id, "call_sid": event.stream, "attempt": attempt}
        if error is None:
            self.outbox.ack(event.id)
            log.info("event forwarded", extra=fields)
            if self.on_settled is not None:
                self.on_settled(event, FORWARDED, attempt, None)
        elif attempt >= self.options.max_attempts:
            self.outbox.bury(event.id, self.owner, error)
            if self.observer is not None:
                self.observer.forward_dead()
            log.error("event undeliverable, moved to the dead list",
                      extra={**fields, "error": error})
            if self.on_settled is not None:
                self.on_settled(event, DEAD, attempt, error)
        else:
            delay = self.options.backoff.delay(attempt)
            aside = refused and attempt > self.options.hold_attempts
            retry = self.outbox.set_aside if aside else self.outbox.retry_at
            retry(event.id, self.owner, self.clock() + delay, error)
            log.warning("event refused, set aside; the call's next events go on" if aside
                        else "event delivery failed, will retry",
                        extra={**fields, "error": error, "retry_in_s": round(delay, 1)})
