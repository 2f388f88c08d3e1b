"""The console's forms: a test message through /notify's own use case, a test event, and the
dead letters' retry, retry-all and delete. Each answers with a redirect and a one-time notice."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, redirect, request, url_for
from werkzeug.wrappers import Response

from services.errors import ForwardingDisabled, RelayError
from services.forwarding.service import Forwarding
from services.legs.model import is_call_sid
from services.use_cases.notify import parse_request
from web.console.parts import ConsoleParts
from web.console.session import ConsoleAuth

log = logging.getLogger("callrelay.console")
DEFAULT_NOTE = "sent from the callrelay console"


def register_actions(bp: Blueprint, parts: ConsoleParts, auth: ConsoleAuth) -> None:
    """Add the forms' actions (POST; the guard has checked session, CSRF token and origin)."""

    def done(endpoint: str, kind: str, text: str, **values: Any) -> Response:
        response = redirect(url_for(endpoint, **values), 303)
        auth.flash(response, request, kind, text)
        return response

    def forwarding() -> Forwarding:
        if parts.forwarding is None:
            raise ForwardingDisabled("Forwarding is off: set FORWARD_URL and FORWARD_SECRET.")
        return parts.forwarding

    @bp.post("/calls/<call_sid>/message")
    def send_message(call_sid: str) -> Response:
        """Send a test message to a leg of this call, exactly as POST /notify would."""
        if not is_call_sid(call_sid):
            return done("console.calls", "error", "That is not a call SID.")
        body: dict[str, Any] = {"call_sid": call_sid, "leg": request.form.get("leg", "sdk"),
                                "content": request.form.get("content", "")}
        key = request.form.get("idempotency_key", "").strip()
        if key:  # the same key on a resubmitted form: Twilio creates the message once
            body["idempotency_key"] = key
        try:
            delivery = parts.notifier.notify(parse_request(body))
        except RelayError as exc:
            return done("console.call", "error", f"Not sent ({exc.code}): {exc.message}",
                        call_sid=call_sid)
        sent = ", ".join(f"{message.sid} to {leg.call_sid} ({leg.identity or 'no SDK'})"
                         for leg, message in delivery.sent)
        log.info("console test message sent", extra={"call_sid": call_sid})
        return done("console.call", "ok", f"Sent {sent}.", call_sid=call_sid)

    @bp.post("/test-event")
    def send_test_event() -> Response:
        """Queue a callrelay.test event for the forwarding backend."""
        note = request.form.get("note", "").strip() or DEFAULT_NOTE
        try:
            event_id = forwarding().send_test(note)
        except RelayError as exc:
            return done("console.dead", "error", f"Not queued ({exc.code}): {exc.message}")
        return done("console.dead", "ok", f"Test event {event_id} queued for FORWARD_URL; if "
                    "the backend keeps refusing it, it shows up below.")

    @bp.post("/dead/retry-all")
    def retry_all() -> Response:
        """Queue every dead letter again."""
        queued = forwarding().revive_all()
        return done("console.dead", "ok", f"{queued} dead letter{'s' * (queued != 1)} "
                    "queued again.")

    @bp.post("/dead/<event_id>/retry")
    def retry(event_id: str) -> Response:
        """Queue one dead letter again."""
        if forwarding().revive(event_id):
            return done("console.dead", "ok", f"{event_id} queued again.")
        return done("console.dead", "error", f"{event_id} is no longer a dead letter.")

    @bp.post("/dead/<event_id>/delete")
    def delete(event_id: str) -> Response:
        """Drop one dead letter for good."""
        if forwarding().delete_dead(event_id):
            return done("console.dead", "ok", f"{event_id} deleted.")
        return done("console.dead", "error", f"{event_id} is no longer a dead letter.")
