"""Operations routes, without auth: liveness and readiness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("ops", __name__)
OPENAPI = json.loads((Path(__file__).parent / "openapi.json").read_text())


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, Any]:
    """The store answers (StoreUnavailable becomes a JSON 503)."""
    current_app.extensions["callrelay.store"].ping()
    return {"status": "ready"}


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    """The OpenAPI document of the internal API."""
    return OPENAPI
