"""Operations routes, without auth: liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, Any]:
    """The store answers (StoreUnavailable becomes a JSON 503)."""
    current_app.extensions["callrelay.store"].ping()
    return {"status": "ready"}
