"""A conference and its participants' legs: what /notify sends to and GET /conferences shows."""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import ConferenceNotFound, LookupBudgetExhausted, NoSuchLeg
from services.legs.conferences import Conference, Participant, is_conference_sid
from services.legs.model import Leg
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.use_cases.reconcile import Reconciler

# Participants whose calls callrelay never saw (added with the Participants API, their status
# callbacks pointing elsewhere) are looked up at Twilio; at most this many per request, each
# answer cached by the Reconciler.
MAX_LOOKUPS = 20


@dataclass(frozen=True)
class ParticipantLeg:
    """A participant, whether it is in the conference now, and its call leg if known."""

    participant: Participant
    present: bool
    leg: Leg | None


def find_conference(conferences: ConferenceStore, ref: str) -> Conference:
    """The conference a CF SID or name names, or ConferenceNotFound (404)."""
    found = conferences.get(ref) if is_conference_sid(ref) else conferences.find(ref)
    if found is None:
        raise ConferenceNotFound("callrelay knows no conference with this name or SID (or it "
                                 "ended more than LEG_RETENTION_S ago).", conference=ref)
    return found


def participant_legs(conference: Conference, legs: LegStore) -> list[ParticipantLeg]:
    """Every participant seen, present or not, with its leg as the registry holds it."""
    return [ParticipantLeg(p, conference.is_present(p), legs.get(p.call_sid))
            for p in conference.participants]


def live_sdk_participants(conference: Conference, legs: LegStore, reconciler: Reconciler,
                          deadline: float | None = None) -> list[Leg]:
    """The live legs of the Voice SDK clients in the conference now; 409 when there is none."""
    details = {"conference_sid": conference.sid, "status": conference.status}
    name = repr(conference.friendly_name or conference.sid)
    if conference.is_ended:
        raise NoSuchLeg(f"Conference {name} has ended; nobody in it can receive messages.",
                        **details)
    present = conference.present()
    if not present:
        raise NoSuchLeg(f"Nobody is in conference {name} now.", **details)
    found: list[Leg] = []
    lookups = 0
    refused: LookupBudgetExhausted | None = None
    for participant in present:
        leg = legs.get(participant.call_sid)
        if leg is None and lookups < MAX_LOOKUPS and refused is None:
            lookups += 1
            try:
                leg = reconciler.call(participant.call_sid, deadline)
            except LookupBudgetExhausted as exc:
                refused = exc  # the participants callrelay knows still get the message
        if leg is not None and leg.is_sdk and leg.is_live:
            found.append(leg)
    if not found and refused is not None:
        raise refused
    if not found:
        raise NoSuchLeg(f"No Voice SDK client is live in conference {name}; phones cannot "
                        "receive messages.", **details, participants=len(present))
    return found
