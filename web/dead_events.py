"""Events that could not be forwarded: list them, retry one or all, delete one."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from services.errors import EventNotFound, ForwardingDisabled, ValidationFailed
from services.forwarding.events import strict_body
from services.forwarding.service import Forwarding
from services.legs.model import is_call_sid
from services.store.outbox import DeadEvent
from services.strict_json import clean_text
from web.security import BearerTokens


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _dead_json(dead: DeadEvent) -> dict[str, Any]:
    body = strict_body(dead.body)
    # An event whose body cannot be made strict JSON is shown as its text (with U+FFFD for
    # what UTF-8 cannot carry), so that the list stays strict JSON.
    event = json.loads(body) if body is not None else clean_text(dead.body)
    # A test event's stream is its own id, not a call.
    call_sid = dead.stream if is_call_sid(dead.stream) else None
    return {"id": dead.id, "call_sid": call_sid, "attempts": dead.attempts,
            "last_error": dead.last_error, "created_at": _iso(dead.created_at),
            "dead_at": _iso(dead.dead_at), "event": event}


class EventIdConverter(BaseConverter):
    """An event id: its kind, an underscore, the rest (msg_KX…, leg_CA…_ringing, test_…).

    Never `retry`: DELETE /events/dead/<id> and POST /events/dead/retry share no URL, so
    neither advertises the other's method.
    """

    regex = r"[^/]+_[^/]*"


def dead_events_blueprint(auth: BearerTokens, forwarding: Forwarding | None) -> Blueprint:
    """The dead list, behind bearer tokens; 404 forwarding_disabled without FORWARD_URL."""
    bp = Blueprint("dead_events", __name__)
    @bp.record_once
    def add_converter(state: BlueprintSetupState) -> None:
        # Recorded before the routes: their rules are compiled with it as they are added.
        state.app.url_map.converters["event_id"] = EventIdConverter

    def enabled() -> Forwarding:
        if forwarding is None:
            raise ForwardingDisabled("Forwarding is off: set FORWARD_URL and FORWARD_SECRET.")
        return forwarding

    @bp.get("/events/dead")
    @auth.required
    def dead_events() -> dict[str, Any]:
        """Events that could not be delivered after FORWARD_MAX_ATTEMPTS, newest first."""
        limit = request.args.get("limit", "100")
        if not re.fullmatch(r"[0-9]{1,4}", limit) or not 1 <= int(limit) <= 1000:
            raise ValidationFailed("limit must be a whole number from 1 to 1000.", field="limit")
        return {"events": [_dead_json(dead) for dead in enabled().dead(int(limit))]}

    @bp.post("/events/dead/<event_id>/retry")
    @auth.required
    def retry_dead_event(event_id: str) -> tuple[dict[str, Any], int]:
        """Queue a dead event again, behind the events already pending for its call."""
        if not enabled().revive(event_id):
            raise EventNotFound("No dead event has this id.", id=event_id)
        return {"id": event_id, "queued": True}, 202

    @bp.post("/events/dead/retry")
    @auth.required
    def retry_all_dead_events() -> tuple[dict[str, Any], int]:
        """Queue every dead event again, oldest first, each behind its call's pending events."""
        return {"queued": enabled().revive_all()}, 202

    @bp.delete("/events/dead/<event_id:event_id>")
    @auth.required
    def delete_dead_event(event_id: str) -> dict[str, Any]:
        """Drop a dead event for good (its id is still recognised as a duplicate)."""
        if not enabled().delete_dead(event_id):
            raise EventNotFound("No dead event has this id.", id=event_id)
        return {"id": event_id, "deleted": True}

    return bp
