"""Conferences as Twilio reports them, and the pure rules that fold their callbacks (no I/O).

Conference callbacks arrive out of order and twice. Each participant keeps the latest join and
the latest leave it was told about, ordered by the conference's SequenceNumber (else Twilio's
Timestamp): it is in the conference when its latest join comes after its latest leave and the
conference has not ended. Taking maxima makes the result independent of arrival order and
repetition; a tie (no way to order) counts as having left.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime

from services.errors import ValidationFailed
from services.legs.model import SEQUENCE_RE, is_call_sid
from services.legs.rules import Retention

CONFERENCE_SID_RE = re.compile(r"^CF[0-9a-fA-F]{32}$")
# Names callrelay dials and looks up: letters, digits, `_.@+-`, inner spaces, 1 to 128
# characters. Enough for room names and ids, nothing that needs escaping in a URL path segment
# beyond the space, nothing that reads as markup or a path.
NAME_RE = re.compile(r"^[A-Za-z0-9_.@+\-](?:[A-Za-z0-9_.@+\- ]{0,126}[A-Za-z0-9_.@+\-])?$")
MAX_STORED_NAME = 256  # names in callbacks of conferences callrelay did not create

START, END = "conference-start", "conference-end"
JOIN, LEAVE = "participant-join", "participant-leave"
_EVENT_RE = re.compile(r"^[a-z][a-z-]{0,63}$")
_PARTICIPANT_EVENT = "participant-"


def is_conference_sid(value: object) -> bool:
    """True when value looks like a Twilio Conference SID."""
    return isinstance(value, str) and CONFERENCE_SID_RE.match(value) is not None


def is_conference_name(value: object) -> bool:
    """True for a name callrelay dials: NAME_RE, and not a CF SID (it could not be looked up)."""
    return (isinstance(value, str) and NAME_RE.match(value) is not None
            and not is_conference_sid(value))


def conference_ref(value: object, field: str = "conference") -> str:
    """A conference's name or CF SID as given; ValidationFailed for anything else."""
    if is_conference_sid(value) or is_conference_name(value):
        return str(value)
    raise ValidationFailed(f"{field} must be a conference SID (CF followed by 32 hex digits) or "
                           "a name of 1 to 128 letters, digits, spaces and _.@+- (no space at "
                           "either end).", field=field)


@dataclass(frozen=True)
class Mark:
    """When something happened: the conference's SequenceNumber and Twilio's Timestamp."""

    sequence: int | None
    at: float  # Twilio's Timestamp (epoch seconds), or the arrival time when it had none

    def after(self, other: Mark) -> bool:
        """True when this happened after `other` (sequence numbers first, then timestamps)."""
        if self.sequence is not None and other.sequence is not None:
            return self.sequence > other.sequence
        return self.at > other.at


@dataclass(frozen=True)
class ConferenceEvent:
    """One conference status callback."""

    conference_sid: str
    kind: str
    friendly_name: str | None = None
    call_sid: str | None = None
    account_sid: str | None = None
    sequence: int | None = None
    timestamp: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ConferenceEvent:
        """An event from Twilio's callback parameters; ValidationFailed if they make none."""
        sid, kind = params.get("ConferenceSid"), params.get("StatusCallbackEvent")
        if not is_conference_sid(sid):
            raise ValidationFailed("ConferenceSid must be CF followed by 32 hex digits.")
        if not isinstance(kind, str) or not _EVENT_RE.match(kind):
            raise ValidationFailed("StatusCallbackEvent is missing or malformed.")
        call_sid = params.get("CallSid") or None
        if (call_sid is not None or kind.startswith(_PARTICIPANT_EVENT)) \
                and not is_call_sid(call_sid):
            raise ValidationFailed("A participant event needs a CallSid (CA + 32 hex digits).")
        name = params.get("FriendlyName") or None
        if name is not None and len(name) > MAX_STORED_NAME:
            raise ValidationFailed(f"FriendlyName is over {MAX_STORED_NAME} characters.")
        seq = params.get("SequenceNumber")
        return cls(conference_sid=str(sid), kind=kind, friendly_name=name, call_sid=call_sid,
                   account_sid=params.get("AccountSid") or None,
                   sequence=int(seq) if seq and SEQUENCE_RE.fullmatch(seq) else None,
                   timestamp=_timestamp(params.get("Timestamp")))


def _timestamp(value: str | None) -> float | None:
    """Twilio's RFC 2822 Timestamp as epoch seconds; None when absent or unreadable."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Participant:
    """A call in a conference: the latest join and leave callrelay was told about."""

    call_sid: str
    joined: Mark | None = None
    left: Mark | None = None

    @property
    def joined_last(self) -> bool:
        """True when its latest join comes after its latest leave."""
        return self.joined is not None and (self.left is None or self.joined.after(self.left))


@dataclass(frozen=True)
class Conference:
    """What callrelay knows about one conference (one CF SID: names are reused over time)."""

    sid: str
    friendly_name: str | None = None
    account_sid: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    participants: tuple[Participant, ...] = ()
    updated_at: float = 0.0

    @property
    def is_ended(self) -> bool:
        """True once conference-end was seen; final whatever arrives later."""
        return self.ended_at is not None

    @property
    def status(self) -> str:
        """Twilio's words: `init` (not started yet), `in-progress`, `completed`."""
        if self.is_ended:
            return "completed"
        return "in-progress" if self.started_at is not None else "init"

    def is_present(self, participant: Participant) -> bool:
        """True while the participant is in the conference."""
        return not self.is_ended and participant.joined_last

    def present(self) -> list[Participant]:
        """The participants in the conference now."""
        return [p for p in self.participants if self.is_present(p)]

    def participant(self, call_sid: str) -> Participant | None:
        """The participant on call `call_sid`, if it was ever seen."""
        return next((p for p in self.participants if p.call_sid == call_sid), None)


def _later(current: Mark | None, mark: Mark) -> Mark | None:
    return mark if current is None or mark.after(current) else current


def fold(current: Conference | None, event: ConferenceEvent, now: float) -> Conference:
    """Fold a callback into a conference; returns `current` itself when it adds nothing."""
    base = current or Conference(sid=event.conference_sid)
    at = event.timestamp if event.timestamp is not None else now
    conference = replace(base, friendly_name=base.friendly_name or event.friendly_name,
                         account_sid=base.account_sid or event.account_sid)
    if event.kind == START:
        conference = replace(conference, started_at=base.started_at or at)
    elif event.kind == END:
        # An end is final: nobody is in an ended conference, whatever arrives after it.
        conference = replace(conference, ended_at=base.ended_at or at)
    elif event.kind in (JOIN, LEAVE) and event.call_sid is not None:
        old = base.participant(event.call_sid) or Participant(event.call_sid)
        mark = Mark(event.sequence, at)
        new = (replace(old, joined=_later(old.joined, mark)) if event.kind == JOIN
               else replace(old, left=_later(old.left, mark)))
        others = tuple(p for p in base.participants if p.call_sid != event.call_sid)
        conference = replace(conference, participants=tuple(sorted(
            (*others, new), key=participant_order)))
    if conference == current:
        return current
    return replace(conference, updated_at=now)


def participant_order(p: Participant) -> tuple[float, str]:
    """Sort key of a conference's participants: by when they joined (else left), then SID."""
    first = p.joined or p.left
    return (first.at if first else 0.0, p.call_sid)


def expires_at(conference: Conference, retention: Retention) -> float:
    """When a store may forget a conference: like a leg, counted from its last change."""
    if conference.is_ended:
        return conference.updated_at + retention.leg_retention_s
    return conference.updated_at + retention.max_call_duration_s


def tombstone(conference: Conference, retention: Retention) -> tuple[float, float]:
    """What a conference's tombstone holds once it is forgotten: (ended_at, until).

    Like a leg's (services.legs.rules.tombstone): the SID of an ended conference, or of one
    whose end was never reported (ended, as far as callrelay knows, when it expired), is not
    revived by a replayed callback for Retention.tombstone_s; after that, Twilio's Timestamp
    marks such a callback stale.
    """
    if conference.ended_at is not None:
        return conference.ended_at, conference.updated_at + retention.tombstone_s
    expired_at = expires_at(conference, retention)
    return expired_at, expired_at + retention.tombstone_s


def from_tombstone(sid: str, ended_at: float) -> Conference:
    """The ended conference a tombstone describes: all a store still knows of it."""
    return Conference(sid=sid, ended_at=ended_at, updated_at=ended_at)
