"""The internal API that backend services call: /notify, the call registry, call histories."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from services.errors import CallNotFound, InvalidJSON, NotFound, ValidationFailed
from services.legs.model import Leg, is_call_sid
from services.store.legs import LegStore
from services.use_cases.call_history import CallHistory
from services.use_cases.list_calls import list_calls, parse_query
from services.use_cases.notify import Notifier, parse_request
from web.request_logs import annotate
from web.security import BearerTokens


def _call_json(legs: list[Leg]) -> dict[str, Any]:
    root = legs[0].root_sid
    return {"call_sid": root, "live": any(leg.is_live for leg in legs),
            "legs": [leg.to_json() for leg in legs]}


def _leg_json(leg: Leg) -> dict[str, Any]:
    return {"leg": "parent" if leg.is_parent else "child", "identity": leg.identity}


def api_blueprint(auth: BearerTokens, notifier: Notifier, legs: LegStore,
                  history: CallHistory | None = None) -> Blueprint:
    """POST /notify, GET /calls, /calls/<call_sid> and its /messages, behind bearer tokens."""
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
    def calls() -> dict[str, Any]:
        """Calls that still have a leg that has not ended, a page at a time, filtered."""
        page = list_calls(legs, parse_query(request.args.to_dict()))
        return {"calls": [_call_json(call) for call in page.calls],
                "next_cursor": page.next_cursor}

    def known_leg(call_sid: str) -> Leg:
        if not is_call_sid(call_sid):
            raise ValidationFailed("call_sid must be CA followed by 32 hex digits.")
        leg = legs.get(call_sid)
        if leg is None:
            raise CallNotFound("callrelay knows no call with this SID (or it ended more than "
                               "LEG_RETENTION_S ago).", call_sid=call_sid)
        return leg

    @bp.get("/calls/<call_sid>")
    @auth.required
    def get_call(call_sid: str) -> dict[str, Any]:
        """One call, found by any of its legs' SIDs, with all its legs."""
        return _call_json(legs.call_legs(known_leg(call_sid).root_sid))

    @bp.get("/calls/<call_sid>/messages")
    @auth.required
    def call_messages(call_sid: str) -> dict[str, Any]:
        """The call's message history (by any of its legs' SIDs), oldest first."""
        root = known_leg(call_sid).root_sid
        annotate(call_sid=root)
        if history is None:
            raise NotFound("This callrelay's store keeps no message history.",
                           call_sid=call_sid)
        return {"call_sid": root, "messages": history.messages(root)}

    return bp
