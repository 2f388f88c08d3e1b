"""GET /metrics: Prometheus text format, summed over every gunicorn worker."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client.core import GaugeMetricFamily

from services.errors import RelayError
from services.metrics import CONTENT_TYPE, Metrics
from services.store import Store

bp = Blueprint("metrics", __name__)
# Bounds the work of one scrape; beyond it the gauges say "at least".
MAX_CALLS_COUNTED = 1000


def store_gauges(store: Store) -> list[GaugeMetricFamily]:
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


@bp.get("/metrics")
def metrics() -> Response:
    """Counters and histograms of every worker, then the store's gauges."""
    registry: Metrics = current_app.extensions["callrelay.metrics"]
    store: Store = current_app.extensions["callrelay.store"]
    return Response(registry.exposition(store_gauges(store)), content_type=CONTENT_TYPE)
