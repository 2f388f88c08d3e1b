"""Twilio-facing webhooks: the Voice URL, call and conference status callbacks, SDK messages."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, request

from config.settings import Settings
from services.errors import Forbidden, InvalidJSON
from services.forwarding.events import parse_message
from services.forwarding.service import Forwarding
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.twilio.conference_access import ConferenceAccess
from services.twilio.dial_policy import DialObserver, DialPolicy
from services.use_cases.call_history import CallHistory
from services.use_cases.record_conference import record_conference
from services.use_cases.record_status import record_status
from web.request_logs import annotate
from web.security import PublicURLs, TwilioSignatures

log = logging.getLogger("callrelay.webhooks")
STATUS_PATH = "/twilio/status"
MESSAGES_PATH = "/twilio/messages"
CONFERENCE_PATH = "/twilio/conference"


def _message_params() -> dict[str, Any]:
    if not request.is_json:
        return request.form.to_dict()
    # A JSON body is covered by the signature only through the bodySHA256 in the URL.
    if "bodySHA256" not in request.args:
        raise Forbidden("A JSON callback must carry bodySHA256 in its URL, as Twilio signs it.")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidJSON("The body must be a JSON object.")
    return body


def twilio_blueprint(settings: Settings, signatures: TwilioSignatures, urls: PublicURLs,
                     dial_policy: DialPolicy, dial_observer: DialObserver, legs: LegStore,
                     forwarding: Forwarding | None, *,
                     conferences: ConferenceStore, conference_access: ConferenceAccess,
                     history: CallHistory | None = None) -> Blueprint:
    """POST /twilio/voice, /status, /conference and /messages, behind Twilio's signature."""
    bp = Blueprint("twilio", __name__)

    retention = settings.retention

    def record(params: dict[str, str], voice_request: bool = False) -> None:
        recorded = record_status(legs, forwarding, params, urls.base(request) + MESSAGES_PATH,
                                 retention, voice_request=voice_request, history=history)
        leg = recorded.leg
        if leg is None:
            annotate(reported=recorded.event.status, stale=True)
            return
        annotate(call_sid=leg.call_sid, parent_call_sid=leg.parent_sid, leg_status=leg.status,
                 reported=recorded.event.status, sdk=leg.is_sdk)

    @bp.post("/twilio/voice")
    @signatures.required
    def voice() -> Response:
        """The TwiML App's Voice URL: record the parent leg, answer with a <Dial>."""
        # The SDK's TwiML builder (xml.etree, 0.9 MiB of a worker's memory) loads with the
        # first Voice URL request: a worker that only takes status callbacks never needs it.
        from services.twilio.twiml import DialPlan, voice_response

        # A field given twice: Twilio's value, the first; the SDK's connect parameters follow.
        params = request.form.to_dict()
        record(params, voice_request=True)
        plan = DialPlan(status_callback_url=urls.base(request) + STATUS_PATH,
                        caller_id=settings.twilio_caller_id,
                        inbound_client_identity=settings.inbound_client_identity,
                        policy=dial_policy, observer=dial_observer,
                        conference_callback_url=urls.base(request) + CONFERENCE_PATH,
                        conferences=conference_access)
        return Response(voice_response(params, plan), mimetype="text/xml")

    @bp.post(STATUS_PATH)
    @signatures.required
    def status() -> Response:
        """Status callbacks of parent and child legs; answered only once durably recorded."""
        record(request.form.to_dict())
        return Response(status=204)

    @bp.post(CONFERENCE_PATH)
    @signatures.required
    def conference() -> Response:
        """Conference status callbacks: answered only once durably recorded."""
        recorded = record_conference(conferences, request.form.to_dict(), retention)
        conference = recorded.conference
        annotate(conference_sid=recorded.event.conference_sid, reported=recorded.event.kind)
        if conference is None:
            annotate(stale=True)
        else:
            annotate(conference_status=conference.status, present=len(conference.present()))
        return Response(status=204)

    @bp.post(MESSAGES_PATH)
    @signatures.required
    def messages() -> Response:
        """A message from a Voice SDK (subscription callback): answered once durably queued."""
        msg = parse_message(_message_params())
        if msg.is_stale(time.time()):
            # A replay, not news: queued again, it would reach the backend under a fresh
            # webhook-timestamp. Acknowledged (Twilio stops), recorded nowhere.
            log.warning("stale sdk message ignored: Twilio stamped it too long ago", extra={
                "call_sid": msg.call_sid, "message_sid": msg.sid,
                "age_s": round(time.time() - (msg.timestamp or 0))})
            return Response(status=204)
        leg = legs.get(msg.call_sid)
        if history is not None:  # before it is queued: "pending" comes before "forwarded"
            history.sdk_message(msg, leg, forwarded=forwarding is not None
                                and "messages" in forwarding.events)
        if forwarding is None:
            log.warning("sdk message dropped: FORWARD_URL is not set",
                        extra={"call_sid": msg.call_sid, "message_sid": msg.sid})
            return Response(status=204)
        forwarding.message_received(msg, leg)
        return Response(status=204)

    return bp
