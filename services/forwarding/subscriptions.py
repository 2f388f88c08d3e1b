"""Subscribes live Voice SDK legs to their messages, once per leg across workers and instances."""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass

from services.errors import RelayError, TwilioRefused
from services.legs.model import Leg
from services.store.outbox import Leases
from services.twilio.port import TwilioGateway

log = logging.getLogger("callrelay.subscriber")


@dataclass(frozen=True)
class SubscriptionOptions:
    """Retries of a subscription, and how long its lease is held."""

    attempts: int = 3
    delay_s: float = 1.0  # doubled after each failed attempt
    # While a worker subscribes: if it dies, another callback of the leg may retry after this.
    lease_s: float = 120.0
    # After success the lease is renewed for at least as long as a call can last (Twilio's
    # default limit is 4 hours), so later callbacks of the leg do not subscribe it again.
    subscribed_lease_s: float = 4 * 3600.0


def lease_name(leg_sid: str) -> str:
    """The lease that says a leg's subscription is taken care of."""
    return f"subscription:{leg_sid}"


def idempotency_key(leg_sid: str) -> str:
    """The IdempotencyKey of a leg's subscription: one per leg, so retries and races are moot."""
    return f"callrelay-subscription-{leg_sid}"


class Subscriber:
    """Leases a leg durably in the webhook, then subscribes it on a background thread."""

    def __init__(self, leases: Leases, twilio: TwilioGateway,
                 options: SubscriptionOptions | None = None) -> None:
        self.leases, self.twilio = leases, twilio
        self.options = options or SubscriptionOptions()
        self._jobs: queue.Queue[tuple[str, str]] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    def leg_recorded(self, leg: Leg, callback_url: str) -> bool:
        """Schedule a subscription when an SDK leg is live and nobody leased it yet."""
        if not (leg.is_sdk and leg.is_live):
            return False
        try:
            if not self.leases.take_lease(lease_name(leg.call_sid), self.options.lease_s):
                return False
        except RelayError:
            # The webhook must still answer: a later callback of this leg will try again.
            log.warning("could not lease the subscription", extra={"call_sid": leg.call_sid})
            return False
        self._ensure_thread()
        self._jobs.put((leg.call_sid, callback_url))
        return True

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every scheduled subscription is done (tests, shutdown); False on timeout."""
        with self._jobs.all_tasks_done:
            return self._jobs.all_tasks_done.wait_for(
                lambda: self._jobs.unfinished_tasks == 0, timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the thread between jobs; unstarted subscriptions are retried by later callbacks."""
        self._stop.set()
        self._jobs.put(("", ""))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and \
                    self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="callrelay-subscriber",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            call_sid, url = self._jobs.get()
            try:
                if call_sid:
                    self.subscribe(call_sid, url)
            finally:
                self._jobs.task_done()

    def subscribe(self, call_sid: str, callback_url: str) -> None:
        """Create the subscription, retrying; release the lease when it cannot be done."""
        name = lease_name(call_sid)
        for attempt in range(1, self.options.attempts + 1):
            fields = {"call_sid": call_sid, "attempt": attempt}
            try:
                sid = self.twilio.subscribe(call_sid, callback_url, idempotency_key(call_sid))
                self.leases.renew_lease(name, self.options.subscribed_lease_s)
                log.info("subscribed to the leg's messages",
                         extra={**fields, "subscription_sid": sid})
                return
            except TwilioRefused as exc:
                log.warning("Twilio refused the subscription", extra={
                    **fields, "twilio_status": exc.details.get("twilio_status"),
                    "twilio_code": exc.details.get("twilio_code")})
                break  # a 4xx (the leg ended, say) does not change by retrying
            except RelayError as exc:
                log.warning("subscription attempt failed",
                            extra={**fields, "error": exc.code})
            except Exception:
                log.exception("subscription failed unexpectedly", extra=fields)
                break
            if attempt < self.options.attempts and \
                    self._stop.wait(self.options.delay_s * 2 ** (attempt - 1)):
                break
        try:
            self.leases.release_lease(name)  # a later callback of the leg may try again
        except RelayError:
            log.warning("could not release the subscription lease", extra={"call_sid": call_sid})
