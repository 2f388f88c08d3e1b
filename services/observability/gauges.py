"""Gauges read from the shared store at scrape time: the same whichever worker or instance
answers, so they hold across workers and instances without any process keeping a count."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from services.errors import RelayError
from services.store.legs import LegStore
from services.store.outbox import Outbox

# Bounds the work of one scrape; beyond it the gauges say "at least".
MAX_CALLS_COUNTED = 1000


def scrape_gauges(legs: LegStore, outbox: Outbox) -> list[GaugeMetricFamily]:
    """Every gauge read from the store; the backlog only when the store answered."""
    up, *counted = store_gauges(legs)
    return [up, *counted, *(outbox_gauges(outbox) if counted else ())]


def store_gauges(store: LegStore) -> list[GaugeMetricFamily]:
    """Whether the store answers, and the live legs and open calls it holds."""
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


def outbox_gauges(outbox: Outbox) -> list[GaugeMetricFamily]:
    """The forwarding backlog: pending and dead events (nothing when the store is down,
    which callrelay_store_up already says)."""
    try:
        backlog = outbox.backlog()
    except RelayError:
        return []
    return [
        GaugeMetricFamily(
            "callrelay_outbox_pending", "Events waiting for delivery to FORWARD_URL (queued, "
            "being delivered or waiting for a retry), counted in the store: every instance "
            "sharing it reports the same number.", value=backlog.pending),
        GaugeMetricFamily(
            "callrelay_outbox_dead", "Events in the dead list (GET /events/dead), counted in "
            "the store: every instance sharing it reports the same number.",
            value=backlog.dead),
    ]
