"""Call legs as Twilio reports them: statuses, SIDs, client identities, legs and leg events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz
from typing import Any

from services.errors import ValidationFailed

CALL_SID_RE = re.compile(r"^CA[0-9a-fA-F]{32}$")

# Twilio reports these in roughly this order; callbacks may arrive in any order, so the rank
# (not the arrival) decides which status a leg is in.
STATUS_RANK: dict[str, int] = {
    "queued": 0,
    "initiated": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "failed": 4,
    "no-answer": 4,
    "canceled": 4,
}
TERMINAL = frozenset(s for s, rank in STATUS_RANK.items() if rank == 4)
# Twilio accepts UserDefinedMessages only in these states.
LIVE = frozenset({"ringing", "in-progress"})

CLIENT_PREFIX = "client:"
# A sequence number: ASCII digits only (str.isdigit takes "²", which int() refuses), and few
# enough to fit a 64-bit integer.
SEQUENCE_RE = re.compile(r"[0-9]{1,18}")
# Fields a Voice URL request never carries from Twilio: there, they can only be the SDK's
# connect parameters (device.connect({params})), which arrive in the same form.
NOT_FROM_TWILIO_IN_VOICE_REQUESTS = frozenset({"ParentCallSid", "SequenceNumber", "Timestamp"})
# The one shape Twilio stamps callbacks with, "Sun, 06 Dec 2026 16:03:35 +0000" (or GMT): read
# without email.utils' general RFC 2822 parser, which is most of a LegEvent's cost.
_TWILIO_TIMESTAMP_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov"
    r"|Dec) ([1-9][0-9]{3}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) (?:\+0000|GMT)", re.ASCII)
_MONTHS = {name: n for n, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                                             "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def is_call_sid(value: object) -> bool:
    """True when value looks like a Twilio Call SID."""
    return isinstance(value, str) and CALL_SID_RE.fullmatch(value) is not None


def client_identity(address: str | None) -> str | None:
    """The identity in a `client:<identity>` address, or None for anything else."""
    if address and address.startswith(CLIENT_PREFIX):
        identity = address[len(CLIENT_PREFIX) :]
        return identity or None
    return None


def parse_timestamp(value: str | None) -> float | None:
    """Twilio's RFC 2822 `Timestamp` in epoch seconds; None when absent or malformed."""
    if not value:
        return None
    fast = _TWILIO_TIMESTAMP_RE.fullmatch(value)
    if fast is not None:
        day, month, year, hour, minute, second = fast.groups()
        try:
            return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute),
                            int(second), tzinfo=UTC).timestamp()
        except ValueError:  # 31 Feb, 25:00: as parsedate_tz's path answers
            return None
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        # No zone, or -0000: read as UTC (Twilio stamps in UTC), never as local time.
        when = datetime(*parts[:6], tzinfo=UTC) - timedelta(seconds=parts[9] or 0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.timestamp()


@dataclass(frozen=True)
class LegEvent:
    """One thing Twilio told us about a leg: a Voice URL request or a status callback."""

    call_sid: str
    status: str
    parent_sid: str | None = None
    account_sid: str | None = None
    from_: str | None = None
    to: str | None = None
    direction: str | None = None
    sequence: int | None = None
    # When Twilio says the event happened (its `Timestamp`); None when it did not say.
    timestamp: float | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> LegEvent:
        """Build an event from Twilio's webhook parameters; ValidationFailed if they make none."""
        call_sid, status = params.get("CallSid"), params.get("CallStatus")
        parent_sid = params.get("ParentCallSid") or None
        if not is_call_sid(call_sid) or (parent_sid is not None and not is_call_sid(parent_sid)):
            raise ValidationFailed("CallSid (and ParentCallSid, when given) must be call SIDs.")
        if status not in STATUS_RANK:
            raise ValidationFailed(f"Unknown CallStatus {status!r}.")
        seq = params.get("SequenceNumber")
        return cls(
            call_sid=str(call_sid),
            status=str(status),
            parent_sid=parent_sid,
            account_sid=params.get("AccountSid") or None,
            from_=params.get("From") or None,
            to=params.get("To") or None,
            direction=params.get("Direction") or None,
            sequence=int(seq) if seq and SEQUENCE_RE.fullmatch(seq) else None,
            timestamp=parse_timestamp(params.get("Timestamp")),
        )

    @classmethod
    def from_voice_request(cls, params: Mapping[str, str]) -> LegEvent:
        """The parent leg a Voice URL request describes, whose SDK (if any) is at `From`.

        The SDK's connect parameters share the request with Twilio's fields: what Twilio does
        not send here is ignored, and a Direction other than `inbound` is not believed (it
        would make `To`, which the caller picks, the leg's identity).
        """
        event = cls.from_params({name: value for name, value in params.items()
                                 if name not in NOT_FROM_TWILIO_IN_VOICE_REQUESTS})
        return event if event.direction in (None, "inbound") else replace(event, direction=None)


@dataclass(frozen=True)
class Leg:
    """What callrelay knows about one call leg."""

    call_sid: str
    status: str
    parent_sid: str | None = None
    account_sid: str | None = None
    from_: str | None = None
    to: str | None = None
    direction: str | None = None
    identity: str | None = None
    updated_at: float = 0.0
    ended_at: float | None = None
    # True when a store answered from the leg's tombstone: the leg itself is forgotten.
    forgotten: bool = field(default=False, compare=False)

    @property
    def is_parent(self) -> bool:
        """True for the first leg of a call (the one without a ParentCallSid)."""
        return self.parent_sid is None

    @property
    def root_sid(self) -> str:
        """The SID of the call's parent leg."""
        return self.parent_sid or self.call_sid

    @property
    def is_sdk(self) -> bool:
        """True when a Voice SDK client sits on this leg."""
        return self.identity is not None

    @property
    def is_live(self) -> bool:
        """True while Twilio accepts messages for this leg."""
        return self.status in LIVE

    @property
    def is_ended(self) -> bool:
        """True once the leg reached a terminal state."""
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """The leg as the internal API shows it."""
        return {
            "call_sid": self.call_sid,
            "leg": "parent" if self.is_parent else "child",
            "parent_call_sid": self.parent_sid,
            "status": self.status,
            "live": self.is_live,
            "sdk": self.is_sdk,
            "identity": self.identity,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
        }
