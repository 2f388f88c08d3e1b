"""The internal API that backend services call: /notify and the call registry."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from services.errors import CallNotFound, InvalidJSON, ValidationFailed
from services.legs import Leg, is_call_sid
from services.notify import Notifier, parse_request
from services.store import Store
from web.observability import annotate
from web.security import bearer_required

bp = Blueprint("api", __name__)


def _store() -> Store:
    return current_app.extensions["callrelay.store"]


def _call_json(legs: list[Leg]) -> dict[str, Any]:
    root = legs[0].root_sid
    return {"call_sid": root, "live": any(leg.is_live for leg in legs),
            "legs": [leg.to_json() for leg in legs]}


@bp.post("/notify")
@bearer_required
def notify() -> tuple[dict[str, Any], int]:
    """Send a message to the right leg of a call, or to every live SDK leg of an identity."""
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise InvalidJSON("The body must be a JSON object (Content-Type: application/json).")
    req = parse_request(body)
    if req.call_sid is not None:
        annotate(call_sid=req.call_sid)
    notifier: Notifier = current_app.extensions["callrelay.notifier"]
    sent = notifier.notify(req)
    annotate(sent_to=[leg.call_sid for leg, _ in sent], message_sids=[m.sid for _, m in sent])
    return {"messages": [
        {"sid": msg.sid, "call_sid": msg.call_sid, "account_sid": msg.account_sid,
         "date_created": msg.date_created, "leg": "parent" if leg.is_parent else "child",
         "identity": leg.identity}
        for leg, msg in sent
    ]}, 201


@bp.get("/calls")
@bearer_required
def list_calls() -> dict[str, Any]:
    """Calls that still have a leg that has not ended."""
    return {"calls": [_call_json(legs) for legs in _store().live_calls() if legs]}


@bp.get("/calls/<call_sid>")
@bearer_required
def get_call(call_sid: str) -> dict[str, Any]:
    """One call, found by any of its legs' SIDs, with all its legs."""
    if not is_call_sid(call_sid):
        raise ValidationFailed("call_sid must be CA followed by 32 hex digits.")
    leg = _store().get(call_sid)
    if leg is None:
        raise CallNotFound("callrelay knows no call with this SID (or it ended more than "
                           "LEG_RETENTION_S ago).", call_sid=call_sid)
    return _call_json(_store().call_legs(leg.root_sid))
