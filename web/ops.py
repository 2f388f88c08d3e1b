"""Operations routes, without auth: liveness, readiness, metrics and the API's description."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response

from services.observability.gauges import scrape_gauges
from services.observability.metrics import CONTENT_TYPE, Metrics
from services.store.legs import LegStore
from services.store.outbox import Outbox

OPENAPI = json.loads((Path(__file__).parent / "openapi.json").read_text())


def ops_blueprint(legs: LegStore, outbox: Outbox, metrics: Metrics) -> Blueprint:
    """/healthz, /readyz, /metrics and /openapi.json."""
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}

    @bp.get("/readyz")
    def readyz() -> dict[str, Any]:
        """The store answers (StoreUnavailable becomes a JSON 503)."""
        legs.ping()
        return {"status": "ready"}

    @bp.get("/metrics")
    def scrape() -> Response:
        """Counters and histograms of every worker, then the gauges read from the store."""
        return Response(metrics.exposition(scrape_gauges(legs, outbox)),
                        content_type=CONTENT_TYPE)

    @bp.get("/openapi.json")
    def openapi() -> dict[str, Any]:
        """The OpenAPI document of the internal API."""
        return OPENAPI

    return bp
