"""The events callrelay forwards to backends: SDK messages and leg updates, as outbox entries."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services import strict_json
from services.errors import ValidationFailed
from services.legs.model import SEQUENCE_RE, Leg, is_call_sid, parse_timestamp
from services.store.outbox import OutboxEvent

MESSAGE_SID_RE = re.compile(r"^KX[0-9a-fA-F]{32}$")
# An event wraps content two levels deep: {"data": {"content": …}}.
EVENT_DEPTH = strict_json.MAX_DEPTH + 2
MESSAGE_EVENT = "call.message"
LEG_EVENT = "call.leg.updated"
# A message Twilio stamped longer ago than this is a replay, not news. Twilio's retries come
# within minutes; and the outbox remembers an id for SEEN_S after it was queued, so whatever
# is younger than this and was seen before is a duplicate it recognises: no gap between them.
STALE_MESSAGE_S = 3600.0
TEST_EVENT = "callrelay.test"
MAX_NOTE_CHARS = 500


@dataclass(frozen=True)
class SdkMessage:
    """One message a Voice SDK sent, as Twilio's subscription callback describes it."""

    sid: str
    call_sid: str
    content: Any
    sequence_number: int | None = None
    size: int = 0  # characters of content, as Twilio sent it
    # When Twilio says the SDK sent it (its `Timestamp`); None when it did not say.
    timestamp: float | None = None

    def is_stale(self, now: float) -> bool:
        """True when Twilio stamped the message too long ago for it to be news (a replay)."""
        return self.timestamp is not None and now - self.timestamp > STALE_MESSAGE_S


def decode_content(raw: Any) -> Any:
    """Twilio's `Content` is JSON text: its value when it is strict JSON, else the text itself
    (lone surrogates replaced by U+FFFD), so that every event is strict JSON."""
    if isinstance(raw, str):
        try:
            return strict_json.loads(raw)
        except strict_json.NotStrictJSON:
            # NaN, Infinity, 1e999, too deep: a strict backend would refuse the whole event.
            return strict_json.clean_text(raw)
    if strict_json.problem(raw) is None:
        return raw
    # Not Twilio's form (Content is text): a JSON body that held another value. Carried as
    # its text, like content that is not strict JSON.
    try:
        text = json.dumps(raw, ensure_ascii=False)
    except (ValueError, RecursionError):
        raise ValidationFailed("Content is nested too deeply.", field="Content") from None
    return strict_json.clean_text(text)


def parse_message(params: Mapping[str, Any]) -> SdkMessage:
    """Validate a subscription callback's fields (JSON or form); ValidationFailed otherwise."""
    sid, call_sid = params.get("Sid"), params.get("CallSid")
    if not isinstance(sid, str) or not MESSAGE_SID_RE.fullmatch(sid):
        raise ValidationFailed("Sid must be KX followed by 32 hex digits.", field="Sid")
    if not is_call_sid(call_sid):
        raise ValidationFailed("CallSid must be CA followed by 32 hex digits.", field="CallSid")
    seq = params.get("SequenceNumber")
    if isinstance(seq, int) and not isinstance(seq, bool):  # a JSON number
        seq = str(seq)
    if seq is None or seq == "":
        sequence = None
    elif isinstance(seq, str) and SEQUENCE_RE.fullmatch(seq):
        sequence = int(seq)
    else:
        raise ValidationFailed("SequenceNumber must be a whole number.", field="SequenceNumber")
    raw = params.get("Content")
    size = len(raw if isinstance(raw, str) else
               json.dumps(raw, separators=(",", ":"), ensure_ascii=False) if raw is not None
               else "")
    return SdkMessage(sid=sid, call_sid=str(call_sid), sequence_number=sequence,
                      content=decode_content(raw), size=size,
                      timestamp=_timestamp(params.get("Timestamp")))


def _timestamp(value: Any) -> float | None:
    """Twilio's `Timestamp` (RFC 2822, or ISO 8601) in epoch seconds; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return parse_timestamp(value)
    # No zone: read as UTC (Twilio stamps in UTC), never as local time.
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _body(kind: str, at: float, data: dict[str, Any]) -> str:
    return strict_json.dumps({"type": kind, "timestamp": _iso(at), "data": data}, EVENT_DEPTH)


def strict_body(body: str) -> str | None:
    """An event's body as strict JSON: as it is when it is; else (an event queued before
    content was checked) with its content carried as text; None when neither can be had."""
    try:
        strict_json.loads(body, EVENT_DEPTH)
        return body
    except strict_json.NotStrictJSON:
        pass
    try:
        event = json.loads(body)
        data = event.get("data") if isinstance(event, dict) else None
        if isinstance(data, dict) and "content" in data:
            data["content"] = strict_json.clean_text(
                json.dumps(data["content"], ensure_ascii=False))
        return strict_json.dumps(event, EVENT_DEPTH)
    except (ValueError, RecursionError):  # NotStrictJSON is a ValueError
        return None


def _leg_name(leg: Leg | None) -> str | None:
    if leg is None:
        return None
    return "parent" if leg.is_parent else "child"


def message_event(msg: SdkMessage, leg: Leg | None, at: float | None = None) -> OutboxEvent:
    """The `call.message` event for an SDK message; `leg` is what the registry knows of it."""
    at = time.time() if at is None else at
    root = leg.root_sid if leg is not None else msg.call_sid
    data = {"call_sid": root, "leg_sid": msg.call_sid, "leg": _leg_name(leg),
            "identity": leg.identity if leg is not None else None, "message_sid": msg.sid,
            "sequence_number": msg.sequence_number, "content": msg.content}
    # The id is Twilio's Sid: a message Twilio posts twice is queued (and signed) once.
    return OutboxEvent(id=f"msg_{msg.sid}", stream=root, body=_body(MESSAGE_EVENT, at, data),
                       created_at=at)


def leg_event(leg: Leg, at: float | None = None) -> OutboxEvent:
    """The `call.leg.updated` event for a leg that has just reached `leg.status`."""
    at = time.time() if at is None else at
    data = {"call_sid": leg.root_sid, "leg_sid": leg.call_sid, "leg": _leg_name(leg),
            "identity": leg.identity, "status": leg.status, "sdk": leg.is_sdk,
            "direction": leg.direction, "from": leg.from_, "to": leg.to}
    # One id per (leg, status): a status reported twice, or by racing callbacks, goes once.
    return OutboxEvent(id=f"leg_{leg.call_sid}_{leg.status}", stream=leg.root_sid,
                       body=_body(LEG_EVENT, at, data), created_at=at)


def make_test_event(note: str, at: float | None = None) -> OutboxEvent:
    """A `callrelay.test` event (an operator checking the backend), on a stream of its own."""
    at = time.time() if at is None else at
    if len(note) > MAX_NOTE_CHARS:
        raise ValidationFailed(f"The note is {len(note)} characters; at most {MAX_NOTE_CHARS}.",
                               field="note")
    event_id = f"test_{uuid.uuid4().hex}"
    # Its own stream: a test event the backend refuses never holds up a call's events, or
    # the next test.
    return OutboxEvent(id=event_id, stream=event_id,
                       body=_body(TEST_EVENT, at, {"note": note}), created_at=at)
