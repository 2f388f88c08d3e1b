"""The internal API's view of conferences: GET /conferences/<name or CF SID>."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from services.legs.conferences import Conference, conference_ref
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.use_cases.conference_targets import (
    ParticipantLeg,
    find_conference,
    participant_legs,
)
from web.request_logs import annotate
from web.security import BearerTokens


def _time(epoch: float | None) -> str | None:
    return datetime.fromtimestamp(epoch, UTC).isoformat() if epoch is not None else None


def _participant_json(item: ParticipantLeg) -> dict[str, Any]:
    p = item.participant
    return {"call_sid": p.call_sid, "present": item.present,
            "joined_at": _time(p.joined.at if p.joined else None),
            "left_at": _time(p.left.at if p.left else None),
            "leg": item.leg.to_json() if item.leg else None}


def conference_json(conference: Conference, participants: list[ParticipantLeg]) -> dict[str, Any]:
    """A conference as the internal API shows it, with every participant seen and its leg."""
    return {"conference_sid": conference.sid, "friendly_name": conference.friendly_name,
            "status": conference.status, "live": not conference.is_ended,
            "started_at": _time(conference.started_at), "ended_at": _time(conference.ended_at),
            "participants": [_participant_json(item) for item in participants]}


def conferences_blueprint(auth: BearerTokens, conferences: ConferenceStore,
                          legs: LegStore) -> Blueprint:
    """GET /conferences/<name or CF SID>, behind bearer tokens."""
    bp = Blueprint("conferences", __name__)

    @bp.get("/conferences/<ref>")
    @auth.required
    def get_conference(ref: str) -> dict[str, Any]:
        """One conference, by name or CF SID, with its participants' legs."""
        conference = find_conference(conferences, conference_ref(ref))
        annotate(conference_sid=conference.sid)
        return conference_json(conference, participant_legs(conference, legs))

    return bp
