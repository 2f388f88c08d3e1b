"""Twilio-facing webhooks: the TwiML App's Voice URL and call-status callbacks."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from services.legs import LegEvent
from services.store import Store
from services.twiml import DialPlan, voice_response
from web.forwarding import leg_recorded
from web.observability import annotate
from web.security import public_base, twilio_signed

bp = Blueprint("twilio", __name__, url_prefix="/twilio")


def _store() -> Store:
    return current_app.extensions["callrelay.store"]


def _record(params: dict[str, str]) -> None:
    event = LegEvent.from_params(params)
    leg = _store().apply(event)
    annotate(call_sid=leg.call_sid, parent_call_sid=leg.parent_sid, leg_status=leg.status,
             reported=event.status, sdk=leg.is_sdk)
    leg_recorded(event, leg)


@bp.post("/voice")
@twilio_signed
def voice() -> Response:
    """The TwiML App's Voice URL: record the parent leg, answer with a <Dial>."""
    params = request.form.to_dict()
    _record(params)
    settings = current_app.config["SETTINGS"]
    status_url = public_base(request, settings) + "/twilio/status"
    plan = DialPlan(status_callback_url=status_url, caller_id=settings.twilio_caller_id,
                    inbound_client_identity=settings.inbound_client_identity)
    return Response(voice_response(params, plan), mimetype="text/xml")


@bp.post("/status")
@twilio_signed
def status() -> Response:
    """Status callbacks of parent and child legs; answered only once durably recorded."""
    _record(request.form.to_dict())
    return Response(status=204)
