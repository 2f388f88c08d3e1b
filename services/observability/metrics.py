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

import requests
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from services.errors import RelayError
from services.observability.labels import (
    DIAL_REFUSAL_REASONS,
    ERROR_CODES,
    LOOKUP_KINDS,
    LOOKUP_OUTCOMES,
    LOOKUP_REFUSALS,
    METHODS,
    NO_STATUS,
    STATUSES,
    TWILIO_CODES,
    TWILIO_ENDPOINTS,
    bounded,
)
from services.store.legs import LegStore

# The classic text format every Prometheus version reads (what generate_latest writes).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
_SID = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9a-fA-F]{32}(?![A-Za-z0-9])")
_ACCOUNT_PREFIX = re.compile(r"^/2010-04-01/Accounts/\{sid\}/")
# Twilio answers in tens to hundreds of milliseconds; the tail up to the 10 s timeout matters.
_TWILIO_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
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
    return bounded(f"{method.upper()} {path}", TWILIO_ENDPOINTS)


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

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request (and, on /twilio/ routes, one webhook).

        `route` is the matched URL rule or `unmatched`: a fixed set, unlike the method and
        status a client may send or provoke.
        """
        key = (route, bounded(method, METHODS), bounded(status, STATUSES))
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
        code = "" if twilio_code is None else bounded(twilio_code, TWILIO_CODES)
        self.notifies.labels(bounded(outcome, ERROR_CODES | {"sent"}), code).inc()

    def twilio_request(self, method: str, url: str, outcome: str, seconds: float) -> None:
        """Observe one HTTP request to Twilio (TwilioObserver)."""
        self.twilio_seconds.labels(twilio_endpoint(method, url),
                                   bounded(outcome, STATUSES | NO_STATUS)).observe(seconds)

    def twilio_retry(self, reason: str) -> None:
        """Count one retried attempt (TwilioObserver)."""
        self.twilio_retries.labels(bounded(reason, STATUSES | NO_STATUS)).inc()

    def breaker_opened(self, seconds: float) -> None:
        """Count an opening of the 429 breaker and say until when (TwilioObserver)."""
        self.breaker_openings.inc()
        self.breaker_open_until.set(time.time() + seconds)

    def breaker_closed(self) -> None:
        """The 429 breaker closed (TwilioObserver)."""
        self.breaker_open_until.set(0)

    def lookup(self, kind: str, outcome: str) -> None:
        """Count one lookup by kind and outcome (LookupObserver)."""
        self.lookups.labels(bounded(kind, LOOKUP_KINDS), bounded(outcome, LOOKUP_OUTCOMES)).inc()

    def lookup_refused(self, kind: str, reason: str) -> None:
        """Count one lookup refused by the budget (LookupObserver)."""
        self.lookups_refused.labels(bounded(kind, LOOKUP_KINDS),
                                    bounded(reason, LOOKUP_REFUSALS)).inc()

    def dial_refused(self, reason: str) -> None:
        """Count one destination the dial policy refused (DialObserver)."""
        self.dial_refusals.labels(bounded(reason, DIAL_REFUSAL_REASONS)).inc()

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


# Bounds the work of one scrape; beyond it the gauges say "at least".
MAX_CALLS_COUNTED = 1000


def store_gauges(store: LegStore) -> list[GaugeMetricFamily]:
    """Gauges computed from the shared store at scrape time, the same whichever worker answers."""
    up = GaugeMetricFamily("callrelay_store_up", "1 when the leg store answered this scrape.")
    try:
        calls = store.live_calls(limit=MAX_CALLS_COUNTED)
    except RelayError:
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    live = [leg for legs in calls for leg in legs if leg.is_live]
    legs = GaugeMetricFamily(
        "callrelay_live_legs", "Call legs ringing or in-progress (Twilio accepts messages for "
        f"them), by whether a Voice SDK client sits on them; counted over at most "
        f"{MAX_CALLS_COUNTED} calls.", labels=["sdk"])
    sdk = sum(1 for leg in live if leg.is_sdk)
    legs.add_metric(["true"], sdk)
    legs.add_metric(["false"], len(live) - sdk)
    open_calls = GaugeMetricFamily(
        "callrelay_open_calls", "Calls with a leg that has not ended.", value=len(calls))
    return [up, legs, open_calls]
