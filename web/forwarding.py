"""SDK messages in (`/twilio/messages`), dead events out (`/events/dead`), and their wiring."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from config.settings import Settings
from services.errors import (
    EventNotFound,
    Forbidden,
    ForwardingDisabled,
    InvalidJSON,
    ValidationFailed,
)
from services.events import parse_message
from services.forwarder import Forwarder
from services.forwarding import Forwarding, ForwardingOptions
from services.legs import Leg, LegEvent
from services.outbox import DeadEvent, ForwardingStore, open_outbox
from services.store import Store
from services.subscriber import Subscriber
from web.security import bearer_required, public_base, twilio_signed

bp = Blueprint("forwarding", __name__)
log = logging.getLogger("callrelay.forwarding")
MESSAGES_PATH = "/twilio/messages"


def register_forwarding(app: Flask, settings: Settings,
                        options: ForwardingOptions | None = None,
                        outbox: ForwardingStore | None = None) -> None:
    """The routes, and with FORWARD_URL the outbox, its delivery thread and the subscriber."""
    app.register_blueprint(bp)
    if not settings.forward_url or not settings.forward_secret:
        return
    options = options or ForwardingOptions()
    outbox = outbox or open_outbox(settings.store_url)
    delivery = replace(options.delivery, max_attempts=settings.forward_max_attempts)
    forwarder = Forwarder(outbox, settings.forward_url, settings.forward_secret, delivery)
    subscriber = (Subscriber(outbox, app.extensions["callrelay.twilio"], options.subscription)
                  if settings.subscribe_messages else None)
    forwarding = Forwarding(outbox, forwarder, subscriber, settings.forward_events)
    app.extensions["callrelay.forwarding"] = forwarding
    # Started here (create_app runs in each worker, after gunicorn forks) and checked on
    # every request, so a process that was forked after create_app starts its own thread.
    forwarding.start()
    app.before_request(forwarding.start)


def _forwarding() -> Forwarding | None:
    return current_app.extensions.get("callrelay.forwarding")


def leg_recorded(event: LegEvent, leg: Leg) -> None:
    """Called by the status webhooks once a leg is recorded: subscriptions and leg events."""
    forwarding = _forwarding()
    if forwarding is not None:
        settings: Settings = current_app.config["SETTINGS"]
        forwarding.leg_recorded(event, leg, public_base(request, settings) + MESSAGES_PATH)


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


@bp.post(MESSAGES_PATH)
@twilio_signed
def messages() -> Response:
    """A message from a Voice SDK (subscription callback): answered once durably queued."""
    msg = parse_message(_message_params())
    forwarding = _forwarding()
    if forwarding is None:
        log.warning("sdk message dropped: FORWARD_URL is not set",
                    extra={"call_sid": msg.call_sid, "message_sid": msg.sid})
        return Response(status=204)
    store: Store = current_app.extensions["callrelay.store"]
    forwarding.message_received(msg, store.get(msg.call_sid))
    return Response(status=204)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _dead_json(dead: DeadEvent) -> dict[str, Any]:
    return {"id": dead.id, "call_sid": dead.stream, "attempts": dead.attempts,
            "last_error": dead.last_error, "created_at": _iso(dead.created_at),
            "dead_at": _iso(dead.dead_at), "event": json.loads(dead.body)}


def _enabled() -> Forwarding:
    forwarding = _forwarding()
    if forwarding is None:
        raise ForwardingDisabled("Forwarding is off: set FORWARD_URL and FORWARD_SECRET.")
    return forwarding


@bp.get("/events/dead")
@bearer_required
def dead_events() -> dict[str, Any]:
    """Events that could not be delivered after FORWARD_MAX_ATTEMPTS, newest first."""
    limit = request.args.get("limit", "100")
    if not re.fullmatch(r"[0-9]{1,4}", limit) or not 1 <= int(limit) <= 1000:
        raise ValidationFailed("limit must be a whole number from 1 to 1000.", field="limit")
    return {"events": [_dead_json(dead) for dead in _enabled().dead(int(limit))]}


@bp.post("/events/dead/<event_id>/retry")
@bearer_required
def retry_dead_event(event_id: str) -> tuple[dict[str, Any], int]:
    """Queue a dead event again, behind the events already pending for its call."""
    if not _enabled().revive(event_id):
        raise EventNotFound("No dead event has this id.", id=event_id)
    return {"id": event_id, "queued": True}, 202
