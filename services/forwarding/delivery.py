"""Delivers outbox events to FORWARD_URL, signed the Standard Webhooks way, on a worker thread."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from standardwebhooks import Webhook

from services.errors import StoreUnavailable
from services.forwarding.events import strict_body
from services.store.outbox import Outbox, OutboxEvent

log = logging.getLogger("callrelay.forwarder")


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


def signed_headers(secret: str, event_id: str, body: str, at: float) -> dict[str, str]:
    """The Standard Webhooks headers (webhook-id, -timestamp, -signature) for one attempt."""
    stamp = datetime.fromtimestamp(int(at), UTC)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at)),
            "webhook-signature": Webhook(secret).sign(event_id, stamp, body)}


class Forwarder:
    """One delivery thread per process: leases due events, posts them, acks or backs off."""

    def __init__(self, outbox: Outbox, url: str, secret: str,
                 options: DeliveryOptions | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox, self.url, self._secret = outbox, url, secret
        self.options = options or DeliveryOptions()
        self.clock = clock
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
        session = requests.Session()
        try:
            while not self._stop.is_set():
                try:
                    handled = self.run_once(session)
                except StoreUnavailable:
                    log.warning("outbox unreachable; retrying shortly")
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
        # Events queued before content was checked may hold NaN: sent as strict JSON too.
        body = strict_body(event.body) or event.body
        headers = {"Content-Type": "application/json", "User-Agent": "callrelay",
                   **signed_headers(self._secret, event.id, body, self.clock())}
        timeout = self.options.timeout_s
        refused = False
        try:
            answer = session.post(self.url, data=body.encode(), headers=headers,
                                  timeout=(min(3.0, timeout), timeout), allow_redirects=False)
            answer.close()
            error = None if 200 <= answer.status_code < 300 else f"HTTP {answer.status_code}"
            refused = 400 <= answer.status_code < 500 and answer.status_code not in (408, 429)
        except requests.RequestException as exc:
            error = exc.__class__.__name__
        attempt = event.attempts + 1
        fields = {"event_id": event.id, "call_sid": event.stream, "attempt": attempt}
        if error is None:
            self.outbox.ack(event.id)
            log.info("event forwarded", extra=fields)
        elif attempt >= self.options.max_attempts:
            self.outbox.bury(event.id, self.owner, error)
            log.error("event undeliverable, moved to the dead list",
                      extra={**fields, "error": error})
        else:
            delay = self.options.backoff.delay(attempt)
            aside = refused and attempt > self.options.hold_attempts
            retry = self.outbox.set_aside if aside else self.outbox.retry_at
            retry(event.id, self.owner, self.clock() + delay, error)
            log.warning("event refused, set aside; the call's next events go on" if aside
                        else "event delivery failed, will retry",
                        extra={**fields, "error": error, "retry_in_s": round(delay, 1)})
