"""The internal API that backend services call: /notify and the call registry."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from services.errors import CallNotFound, InvalidJSON, ValidationFailed
from services.legs.model import Leg, is_call_sid
from services.store.legs import LegStore
from services.use_cases.notify import Notifier, parse_request
from web.request_logs import annotate
from web.security import BearerTokens


def _call_json(legs: list[Leg]) -> dict[str, Any]:
    root = legs[0].root_sid
    return {"call_sid": root, "live": any(leg.is_live for leg in legs),
            "legs": [leg.to_json() for leg in legs]}


def _leg_json(leg: Leg) -> dict[str, Any]:
    return {"leg": "parent" if leg.is_parent else "child", "identity": leg.identity}


def api_blueprint(auth: BearerTokens, notifier: Notifier, legs: LegStore) -> Blueprint:
    """POST /notify, GET /calls and GET /calls/<call_sid>, behind bearer tokens."""
    bp = Blueprint("api", __name__)

    @bp.post("/notify")
    @auth.required
    def notify() -> tuple[dict[str, Any], int]:
        """Send a message to the right leg of a call, or to every live SDK leg of an identity."""
        body = request.get_json(silent=True, force=True)
        if body is None:
            raise InvalidJSON("The body must be a JSON object (Content-Type: application/json).")
        req = parse_request(body)
        if req.call_sid is not None:
            annotate(call_sid=req.call_sid)  # the request line names it: no second parse
        delivery = notifier.notify(req)
        annotate(sent_to=[leg.call_sid for leg, _ in delivery.sent],
                 message_sids=[m.sid for _, m in delivery.sent])
        answer: dict[str, Any] = {"messages": [
            {"sid": msg.sid, "call_sid": msg.call_sid, "account_sid": msg.account_sid,
             "date_created": msg.date_created, **_leg_json(leg)}
            for leg, msg in delivery.sent
        ]}
        if delivery.failed:
            annotate(failed_on=[f.leg.call_sid for f in delivery.failed])
            answer["failed"] = [{"call_sid": f.leg.call_sid, **_leg_json(f.leg),
                                 "error": f.error.to_json()["error"]}
                                for f in delivery.failed]
        return answer, 201

    @bp.get("/calls")
    @auth.required
    def list_calls() -> dict[str, Any]:
        """Calls that still have a leg that has not ended."""
        return {"calls": [_call_json(call) for call in legs.live_calls() if call]}

    @bp.get("/calls/<call_sid>")
    @auth.required
    def get_call(call_sid: str) -> dict[str, Any]:
        """One call, found by any of its legs' SIDs, with all its legs."""
        if not is_call_sid(call_sid):
            raise ValidationFailed("call_sid must be CA followed by 32 hex digits.")
        leg = legs.get(call_sid)
        if leg is None:
            raise CallNotFound("callrelay knows no call with this SID (or it ended more than "
                               "LEG_RETENTION_S ago).", call_sid=call_sid)
        return _call_json(legs.call_legs(leg.root_sid))

    return bp
