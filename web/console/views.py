"""What the console shows of calls, legs, conferences and dead letters: plain dicts that the
templates render and the live-update script receives as JSON. Phone numbers are masked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.legs.conferences import Conference
from services.legs.model import Leg
from services.observability.redaction import PHONE_RE, mask_phone
from services.store.outbox import DeadEvent
from services.use_cases.conference_targets import ParticipantLeg

CONFERENCE_PREFIX = "conference:"
MAX_FILTER_CHARS = 128


def iso(at: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC, to the second."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def address(value: str | None) -> str | None:
    """A From/To as the console shows it: client and conference names whole, numbers masked."""
    if value is None:
        return None
    return PHONE_RE.sub(lambda m: mask_phone(m.group()), value)


def leg_view(leg: Leg) -> dict[str, Any]:
    """One leg: its role, status and who sits on it."""
    return {"call_sid": leg.call_sid, "leg": "parent" if leg.is_parent else "child",
            "status": leg.status, "live": leg.is_live, "ended": leg.is_ended,
            "sdk": leg.is_sdk, "identity": leg.identity, "from": address(leg.from_),
            "to": address(leg.to), "direction": leg.direction,
            "updated_at": iso(leg.updated_at or None), "ended_at": iso(leg.ended_at)}


def call_view(legs: list[Leg]) -> dict[str, Any]:
    """A call (parent first, then its children) with its legs."""
    identities = sorted({leg.identity for leg in legs if leg.identity})
    return {"call_sid": legs[0].root_sid, "live": any(leg.is_live for leg in legs),
            "ended": all(leg.is_ended for leg in legs), "identities": identities,
            "legs": [leg_view(leg) for leg in legs]}


def clean_filter(value: str | None) -> str:
    """The filter as typed, trimmed and bounded."""
    return (value or "").strip()[:MAX_FILTER_CHARS]


def matches(legs: list[Leg], needle: str) -> bool:
    """True when any leg's SID starts with `needle` or its identity contains it (any case)."""
    if not needle:
        return True
    needle = needle.lower()
    return any(leg.call_sid.lower().startswith(needle)
               or (leg.identity is not None and needle in leg.identity.lower())
               for leg in legs)


def conference_names(calls: list[list[Leg]]) -> list[str]:
    """The conferences that live calls dialled into (`To=conference:<name>`), sorted."""
    return sorted({leg.to.removeprefix(CONFERENCE_PREFIX) for legs in calls for leg in legs
                   if leg.to and leg.to.startswith(CONFERENCE_PREFIX) and not leg.is_ended})


def conference_view(conference: Conference, participants: list[ParticipantLeg]
                    ) -> dict[str, Any]:
    """A conference with every participant seen, present or not, and its leg when known."""
    return {"sid": conference.sid, "name": conference.friendly_name,
            "status": conference.status, "live": not conference.is_ended,
            "started_at": iso(conference.started_at), "ended_at": iso(conference.ended_at),
            "participants": [{
                "call_sid": item.participant.call_sid, "present": item.present,
                "joined_at": iso(item.participant.joined.at if item.participant.joined
                                 else None),
                "left_at": iso(item.participant.left.at if item.participant.left else None),
                "leg": leg_view(item.leg) if item.leg else None,
            } for item in participants]}


def dead_view(dead: DeadEvent) -> dict[str, Any]:
    """A dead letter: what it was, where it stopped, and its body for a closer look."""
    try:
        event = json.loads(dead.body)
    except ValueError:
        event = None
    kind = event.get("type") if isinstance(event, dict) else None
    data = event.get("data") if isinstance(event, dict) else None
    call_sid = data.get("call_sid") if isinstance(data, dict) else None
    return {"id": dead.id, "type": kind or "?", "call_sid": call_sid,
            "attempts": dead.attempts, "last_error": dead.last_error,
            "created_at": iso(dead.created_at), "dead_at": iso(dead.dead_at),
            "body": address(json.dumps(event, indent=2, ensure_ascii=False)
                            if event is not None else dead.body)}


def message_view(message: dict[str, Any]) -> dict[str, Any]:
    """A history entry as the timeline shows it: its content as JSON text, numbers masked."""
    content = message.get("content")
    error = message.get("error")
    return {**message,
            "content_text": None if content is None else address(
                json.dumps(content, ensure_ascii=False)),
            "error": None if not isinstance(error, dict) else {
                **error, "message": address(str(error.get("message") or "")) or None}}
