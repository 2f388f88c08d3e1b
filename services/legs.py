"""Call legs and the rules that govern them: status order, liveness, which leg is the SDK's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
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


def is_call_sid(value: object) -> bool:
    """True when value looks like a Twilio Call SID."""
    return isinstance(value, str) and CALL_SID_RE.match(value) is not None


def client_identity(address: str | None) -> str | None:
    """The identity in a `client:<identity>` address, or None for anything else."""
    if address and address.startswith(CLIENT_PREFIX):
        identity = address[len(CLIENT_PREFIX) :]
        return identity or None
    return None


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
            sequence=int(seq) if seq and seq.isdigit() else None,
        )


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


def sdk_identity(leg: Leg) -> str | None:
    """The Voice SDK client on a leg: whoever sits at the far end of the leg from Twilio.

    On an inbound leg (a device called out) that is `From`; on an outbound leg (`<Dial>`
    children, REST-created calls) it is `To`. Without a direction: the parent's `From`, a
    child's `To`.
    """
    return _far_end(leg.direction, leg.parent_sid, leg.from_, leg.to)


def _far_end(direction: str | None, parent_sid: str | None, from_: str | None,
             to: str | None) -> str | None:
    inbound = direction == "inbound" if direction else parent_sid is None
    return client_identity(from_ if inbound else to)


def merge(current: Leg | None, event: LegEvent, now: float) -> Leg:
    """Fold an event into a leg: status only moves forward, a terminal status is final.

    Attributes already known are kept and missing ones filled in, so the result does not
    depend on the order or repetition of the events. An event that adds nothing returns
    `current` itself.
    """
    # Every webhook runs this: one Leg is built, not a chain of dataclasses.replace().
    base = current or Leg(call_sid=event.call_sid, status=event.status)
    if base.is_ended or STATUS_RANK[event.status] <= STATUS_RANK[base.status]:
        status = base.status
    else:
        status = event.status
    parent_sid = base.parent_sid or event.parent_sid
    account_sid = base.account_sid or event.account_sid
    from_, to = base.from_ or event.from_, base.to or event.to
    direction = base.direction or event.direction
    identity = _far_end(direction, parent_sid, from_, to)
    if current is not None and (status, parent_sid, account_sid, from_, to, direction,
                                identity) == (current.status, current.parent_sid,
                                              current.account_sid, current.from_, current.to,
                                              current.direction, current.identity):
        return current
    return Leg(call_sid=base.call_sid, status=status, parent_sid=parent_sid,
               account_sid=account_sid, from_=from_, to=to, direction=direction,
               identity=identity, updated_at=now,
               ended_at=base.ended_at or (now if status in TERMINAL else None))


def call_order(leg: Leg) -> tuple[bool, float, str]:
    """Sort key of a call's legs: the parent, then the children, oldest first."""
    return (not leg.is_parent, leg.updated_at, leg.call_sid)


def expires_at(leg: Leg, retention_s: float, max_call_s: float) -> float:
    """When the store may forget a leg: retention after it ended, else after the longest call."""
    if leg.ended_at is not None:
        return leg.ended_at + retention_s
    return leg.updated_at + max_call_s
