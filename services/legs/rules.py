"""The rules of legs: which leg is the SDK's, how events fold into a leg, when it may go."""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.legs.model import STATUS_RANK, TERMINAL, Leg, LegEvent, client_identity


def sdk_identity(leg: Leg) -> str | None:
    """The Voice SDK client on a leg: whoever sits at the far end of the leg from Twilio.

    On an inbound leg (a device called out) that is `From`; on an outbound leg (`<Dial>`
    children, REST-created calls) it is `To`. Without a direction: the parent's `From`, a
    child's `To`.
    """
    inbound = leg.direction == "inbound" if leg.direction else leg.is_parent
    return client_identity(leg.from_ if inbound else leg.to)


def merge(current: Leg | None, event: LegEvent, now: float) -> Leg:
    """Fold an event into a leg: status only moves forward, a terminal status is final.

    Attributes already known are kept and missing ones filled in, so the result does not
    depend on the order or repetition of the events. An event that adds nothing returns
    `current` itself.
    """
    base = current or Leg(call_sid=event.call_sid, status=event.status)
    if base.is_ended or STATUS_RANK[event.status] <= STATUS_RANK[base.status]:
        status = base.status
    else:
        status = event.status
    filled = replace(
        base,
        status=status,
        parent_sid=base.parent_sid or event.parent_sid,
        account_sid=base.account_sid or event.account_sid,
        from_=base.from_ or event.from_,
        to=base.to or event.to,
        direction=base.direction or event.direction,
    )
    filled = replace(filled, identity=sdk_identity(filled))
    if filled == current:
        return current
    return replace(
        filled,
        updated_at=now,
        ended_at=base.ended_at or (now if status in TERMINAL else None),
    )


def call_order(leg: Leg) -> tuple[bool, float, str]:
    """Sort key of a call's legs: the parent, then the children, oldest first."""
    return (not leg.is_parent, leg.updated_at, leg.call_sid)


@dataclass(frozen=True)
class Retention:
    """How long a store keeps legs: LEG_RETENTION_S after they end, MAX_CALL_DURATION_S else."""

    leg_retention_s: float = 3600.0
    # Twilio ends calls after 4 hours by default; a leg whose `completed` callback was lost
    # must not stay "live" (and in the store) for ever.
    max_call_duration_s: float = 4 * 3600.0


def expires_at(leg: Leg, retention: Retention) -> float:
    """When the store may forget a leg: retention after it ended, else after the longest call."""
    if leg.ended_at is not None:
        return leg.ended_at + retention.leg_retention_s
    return leg.updated_at + retention.max_call_duration_s
