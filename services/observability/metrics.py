"""Prometheus metrics, correct across gunicorn workers (prometheus-client's multiprocess mode).

Multiprocess mode is chosen by prometheus-client when it is first imported: config/gunicorn.conf.py
sets PROMETHEUS_MULTIPROC_DIR in the master, before any worker imports it. Without it (tests, a
single process), each `Metrics` counts in its own registry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from services.forwarding.delivery import FAILURE_REASONS
from services.observability import labels
from services.observability.labels import bounded
from services.use_cases.call_history import HISTORY_OPERATIONS

# The classic text format every Prometheus version reads (what generate_latest writes).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_SID = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9a-fA-F]{32}(?![A-Za-z0-9])")
_ACCOUNT_PREFIX = re.compile(r"^/2010-04-01/Accounts/\{sid\}/")
# Twilio answers in tens to hundreds of milliseconds; the tail up to the 10 s timeout matters.
_TWILIO_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# A backend should answer well within the 10 s delivery timeout.
_FORWARD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Who noticed that the store could not be reached: a request (answered 503
# store_unavailable), the forwarding thread, or anything else.
STORE_ERROR_SOURCES = ("request", "forwarding", "other")
R = TypeVar("R")


class TwilioObserver(Protocol):
    """What the Twilio adapter reports, through an optional hook, about its requests."""

    def twilio_request(self, method: str, url: str, outcome: str, seconds: float) -> None:
        """One HTTP request to Twilio ended: its outcome is the HTTP status, or why it has none."""
        ...

    def twilio_retry(self, reason: str) -> None:
        """A failed attempt (reason: HTTP status, `timeout` or `connection`) will be retried."""
        ...

    def breaker_opened(self, seconds: float) -> None:
        """The 429 breaker opened for `seconds`: requests to Twilio are refused meanwhile."""
        ...

    def breaker_closed(self) -> None:
        """The 429 breaker closed: Twilio answered a probe without a 429."""
        ...


def observed(observer: TwilioObserver | None, method: str, url: str, send: Callable[[], R]) -> R:
    """Run `send` (one HTTP request to Twilio), reporting its outcome and time to `observer`."""
    if observer is None:
        return send()
    import requests  # loaded already: `send` is the Twilio SDK's request through it

    start, outcome = time.monotonic(), "connection"
    try:
        response = send()
        outcome = str(getattr(response, "status_code", "unknown"))
        return response
    except requests.Timeout:
        outcome = "timeout"
        raise
    finally:
        observer.twilio_request(method, url, outcome, time.monotonic() - start)


def multiprocess_mode() -> bool:
    """True when prometheus-client keeps values in PROMETHEUS_MULTIPROC_DIR files."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def twilio_endpoint(method: str, url: str) -> str:
    """A label for a Twilio URL: `POST Calls/{sid}/UserDefinedMessages.json`, or `other`."""
    path = _ACCOUNT_PREFIX.sub("", _SID.sub("{sid}", urlsplit(url).path))
    return bounded(f"{method.upper()} {path}", labels.TWILIO_ENDPOINTS)


class _Fixed:
    """A collector that yields metric families computed beforehand (at scrape time)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


class Metrics:
    """callrelay's counters and histograms; also the Twilio adapter's observer hook."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "callrelay_http_requests", "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"], registry=r)
        self.http_seconds = Histogram(
            "callrelay_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["route"], registry=r)
        self.webhooks = Counter(
            "callrelay_webhooks", "Twilio webhooks received, by route and outcome (HTTP status).",
            ["route", "outcome"], registry=r)
        self.notifies = Counter(
            "callrelay_notify", "/notify requests, by outcome (sent, or the error code) and "
            "Twilio's error code when Twilio refused.", ["outcome", "twilio_code"], registry=r)
        self.twilio_seconds = Histogram(
            "callrelay_twilio_request_duration_seconds", "Latency of HTTP requests to Twilio, "
            "by endpoint and outcome (HTTP status, timeout, connection).",
            ["endpoint", "outcome"], buckets=_TWILIO_BUCKETS, registry=r)
        self.twilio_retries = Counter(
            "callrelay_twilio_retries", "Attempts toward Twilio that failed and were retried, by "
            "reason (HTTP status, timeout, connection).", ["reason"], registry=r)
        self.dial_refusals = Counter(
            "callrelay_dial_refused", "Destinations an SDK caller asked for that the dial "
            "policy refused, by reason.", ["reason"], registry=r)
        self.history_failures = Counter(
            "callrelay_history_write_failures", "Message-history writes that failed (the "
            "message itself went on), by operation.", ["operation"], registry=r)
        self.store_errors = Counter(
            "callrelay_store_errors", "Times the store could not be reached, by who noticed: "
            "a request (answered 503 store_unavailable) or the forwarding thread.",
            ["source"], registry=r)
        self.unreplicated_writes = Counter(
            "callrelay_store_unreplicated_writes", "Redis writes fewer replicas than "
            "REDIS_MIN_REPLICAS acknowledged in time: not acknowledged (answered 503, Twilio "
            "retries).", registry=r)
        self._forwarding_metrics(r)
        self._worker_metrics(r)
        self._lookup_metrics(r)
        # Every value of a bounded label is there from the start, at 0: rate() and increase()
        # then see the first failure, instead of a series that appears already at 1.
        for source in STORE_ERROR_SOURCES:
            self.store_errors.labels(source)
        for reason in FAILURE_REASONS:
            self.forwards_failed.labels(reason)
        for operation in HISTORY_OPERATIONS:
            self.history_failures.labels(operation)
        for kind in labels.LOOKUP_KINDS:
            for outcome in labels.LOOKUP_OUTCOMES:
                self.lookups.labels(kind, outcome)
            for reason in labels.LOOKUP_REFUSALS:
                self.lookups_refused.labels(kind, reason)

    def _forwarding_metrics(self, r: CollectorRegistry) -> None:
        self.forwards_delivered = Counter(
            "callrelay_forward_delivered", "Events the backend (FORWARD_URL) accepted.",
            registry=r)
        self.forwards_failed = Counter(
            "callrelay_forward_failed", "Delivery attempts that failed, by reason (http_3xx, "
            "http_4xx, http_5xx, timeout, connection, other); each retry counts again.",
            ["reason"], registry=r)
        self.forwards_dead = Counter(
            "callrelay_forward_dead", "Events that failed their last attempt and moved to the "
            "dead list.", registry=r)
        self.forward_seconds = Histogram(
            "callrelay_forward_attempt_duration_seconds", "Time the backend took to answer a "
            "delivery attempt (or to fail it).", buckets=_FORWARD_BUCKETS, registry=r)

    def _worker_metrics(self, r: CollectorRegistry) -> None:
        # livesum/livemax: a dead worker's value leaves the sum when gunicorn reaps it
        # (config/metrics_dir.child_exit); outside multiprocess mode the mode is ignored.
        self.workers = Gauge(
            "callrelay_workers", "Worker processes serving requests now.",
            registry=r, multiprocess_mode="livesum")
        self.workers_configured = Gauge(
            "callrelay_workers_configured", "Worker processes this instance is configured to "
            "run (WEB_CONCURRENCY).", registry=r, multiprocess_mode="livemax")

    def _lookup_metrics(self, r: CollectorRegistry) -> None:
        self.lookups = Counter(
            "callrelay_lookups", "Lookups of calls and identities callrelay does not know, by "
            "kind (call, children, client) and outcome (found, unknown, failed at Twilio, or "
            "cached: answered without asking Twilio).", ["kind", "outcome"], registry=r)
        self.lookups_refused = Counter(
            "callrelay_lookups_refused", "Lookups refused with 503 lookup_budget_exhausted, by "
            "kind and reason (rate: LOOKUP_BUDGET spent; concurrency: too many in flight).",
            ["kind", "reason"], registry=r)
        self.breaker_openings = Counter(
            "callrelay_twilio_breaker_opened", "Times the breaker opened because Twilio kept "
            "answering 429.", registry=r)
        # Per process, a wall-clock time so that it reads right without traffic: the breaker
        # is open where it is in the future (max over the live workers).
        self.breaker_open_until = Gauge(
            "callrelay_twilio_breaker_open_until_seconds", "Unix time until which requests to "
            "Twilio are refused because it answered 429 (0 or past: closed).",
            registry=r, multiprocess_mode="livemax")

    def worker_started(self, configured: int) -> None:
        """This process serves requests, one of `configured` workers."""
        self.workers.set(1)
        self.workers_configured.set(configured)

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request (and, on /twilio/ routes, one webhook).

        `route` is the matched URL rule or `unmatched`: a fixed set, unlike the method and
        status a client may send or provoke.
        """
        key = (route, bounded(method, labels.METHODS), bounded(status, labels.STATUSES))
        children = self._children.get(key)
        if children is None:
            # `labels()` validates and looks the labels up on every call: done once per
            # route, method and status (a few dozen at most), not once per request.
            children = self._children[key] = (
                self.http_requests.labels(*key),
                self.http_seconds.labels(route),
                self.webhooks.labels(route, key[2]) if route.startswith("/twilio/")
                else None)
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def notify(self, outcome: str, twilio_code: object = None) -> None:
        """Count one /notify request: `sent` or the error code."""
        code = "" if twilio_code is None else bounded(twilio_code, labels.TWILIO_CODES)
        self.notifies.labels(bounded(outcome, labels.ERROR_CODES | {"sent"}), code).inc()

    def twilio_request(self, method: str, url: str, outcome: str, seconds: float) -> None:
        """Observe one HTTP request to Twilio (TwilioObserver)."""
        outcome = bounded(outcome, labels.STATUSES | labels.NO_STATUS)
        self.twilio_seconds.labels(twilio_endpoint(method, url), outcome).observe(seconds)

    def twilio_retry(self, reason: str) -> None:
        """Count one retried attempt (TwilioObserver)."""
        self.twilio_retries.labels(bounded(reason, labels.STATUSES | labels.NO_STATUS)).inc()

    def breaker_opened(self, seconds: float) -> None:
        """Count an opening of the 429 breaker and say until when (TwilioObserver)."""
        self.breaker_openings.inc()
        self.breaker_open_until.set(time.time() + seconds)

    def breaker_closed(self) -> None:
        """The 429 breaker closed (TwilioObserver)."""
        self.breaker_open_until.set(0)

    def lookup(self, kind: str, outcome: str) -> None:
        """Count one lookup by kind and outcome (LookupObserver)."""
        self.lookups.labels(bounded(kind, labels.LOOKUP_KINDS),
                            bounded(outcome, labels.LOOKUP_OUTCOMES)).inc()

    def lookup_refused(self, kind: str, reason: str) -> None:
        """Count one lookup refused by the budget (LookupObserver)."""
        self.lookups_refused.labels(bounded(kind, labels.LOOKUP_KINDS),
                                    bounded(reason, labels.LOOKUP_REFUSALS)).inc()

    def dial_refused(self, reason: str) -> None:
        """Count one destination the dial policy refused (DialObserver)."""
        self.dial_refusals.labels(bounded(reason, labels.DIAL_REFUSAL_REASONS)).inc()

    def history_write_failed(self, operation: str) -> None:
        """Count one message-history write that failed (HistoryObserver)."""
        self.history_failures.labels(operation).inc()

    def store_error(self, source: str) -> None:
        """Count one time the store could not be reached (a STORE_ERROR_SOURCES)."""
        self.store_errors.labels(source if source in STORE_ERROR_SOURCES else "other").inc()

    def forward_attempt(self, failure: str | None, seconds: float) -> None:
        """Count one delivery attempt: accepted, or failed for a reason (DeliveryObserver)."""
        self.forward_seconds.observe(seconds)
        if failure is None:
            self.forwards_delivered.inc()
        else:
            self.forwards_failed.labels(failure if failure in FAILURE_REASONS else "other").inc()

    def forward_dead(self) -> None:
        """Count one event moved to the dead list (DeliveryObserver)."""
        self.forwards_dead.inc()

    def exposition(self, computed: Iterable[Metric] = ()) -> bytes:
        """The text format of every worker's metrics, then the values computed at scrape time."""
        if multiprocess_mode():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = self.registry
        scraped = CollectorRegistry()
        scraped.register(_Fixed(computed))  # type: ignore[arg-type]
        return generate_latest(registry) + generate_latest(scraped)
