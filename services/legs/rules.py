"""The rules of legs: which leg is the SDK's, how events fold into a leg, when it may go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.legs.model import STATUS_RANK, TERMINAL, Leg, LegEvent, client_identity


def sdk_identity(direction: str | None, parent_sid: str | None, from_: str | None,
                 to: str | None) -> str | None:
    """The Voice SDK client on a leg: whoever sits at the far end of the leg from Twilio.

    On an inbound leg (a device called out) that is `From`; on an outbound leg (`<Dial>`
    children, REST-created calls) it is `To`. Without a direction: the parent's `From`, a
    child's `To`.
    """
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
    identity = sdk_identity(direction, parent_sid, from_, to)
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


# However short LEG_RETENTION_S is, a callback this young is news: Twilio's own retries (up to
# 5, 15 s each), its queueing and clock skew stay well within it.
STALE_FLOOR_S = 15 * 60.0
# Tombstones outlive every replay window worth worrying about that the Timestamp guard cannot
# close: the Voice URL request carries no Timestamp. TOMBSTONE_RETENTION_S changes this floor
# (small Redis plans: docs/sizing.md); it never goes below what the Timestamp guard needs.
TOMBSTONE_FLOOR_S = 7 * 24 * 3600.0
# Twilio ends a call that reaches its time limit as completed.
EXPIRED_STATUS = "completed"


@dataclass(frozen=True)
class Retention:
    """How long a store keeps legs: LEG_RETENTION_S after they end, MAX_CALL_DURATION_S else."""

    leg_retention_s: float = 3600.0
    # Twilio ends calls after 4 hours by default; a leg whose `completed` callback was lost
    # must not stay "live" (and in the store) for ever.
    max_call_duration_s: float = 4 * 3600.0
    # The least time a tombstone is kept (TOMBSTONE_RETENTION_S).
    tombstone_floor_s: float = TOMBSTONE_FLOOR_S

    @property
    def stale_after_s(self) -> float:
        """Age past which a callback's Timestamp makes it a replay, not news."""
        return max(self.leg_retention_s, STALE_FLOOR_S)

    @property
    def tombstone_s(self) -> float:
        """How long the SID of an ended leg is remembered as ended, from the end.

        Longer than the leg itself is kept (LEG_RETENTION_S) and than `stale_after_s`, by
        at least 2 x MAX_CALL_DURATION_S of room for clock skew: a callback that could
        revive a leg was stamped before the leg ended, so once the tombstone is gone the
        Timestamp guard refuses it. No gap between the two.
        """
        # stale_after_s >= LEG_RETENTION_S; it is the larger once TOMBSTONE_RETENTION_S no
        # longer hides a short LEG_RETENTION_S behind a week.
        return max(self.tombstone_floor_s, 2 * self.max_call_duration_s + self.stale_after_s)


def expires_at(leg: Leg, retention: Retention) -> float:
    """When the store may forget a leg: retention after it ended, else after the longest call."""
    if leg.ended_at is not None:
        return leg.ended_at + retention.leg_retention_s
    return leg.updated_at + retention.max_call_duration_s


def tombstone_expires_at(leg: Leg, retention: Retention) -> float:
    """When the store may forget that an ended leg ended (it must never come back before)."""
    ended_at = leg.ended_at if leg.ended_at is not None else leg.updated_at
    return ended_at + retention.tombstone_s


def tombstone(leg: Leg, retention: Retention) -> tuple[str, float, float]:
    """What a leg's tombstone holds once the leg is forgotten: (status, ended_at, until).

    An ended leg's status and end. A leg whose end was never reported ended, as far as
    callrelay knows, when it expired (MAX_CALL_DURATION_S without news), as `completed`: that
    SID is not revived either, whatever is replayed (a Voice URL request carries no Timestamp).
    """
    if leg.ended_at is not None:
        return leg.status, leg.ended_at, tombstone_expires_at(leg, retention)
    expired_at = expires_at(leg, retention)
    return EXPIRED_STATUS, expired_at, expired_at + retention.tombstone_s


def from_tombstone(call_sid: str, status: str, ended_at: float) -> Leg:
    """The ended leg a tombstone describes: all a store still knows of a forgotten leg."""
    return Leg(call_sid=call_sid, status=status, updated_at=ended_at, ended_at=ended_at,
               forgotten=True)


class Stamped(Protocol):
    """A callback Twilio stamped (a leg's or a conference's)."""

    @property
    def timestamp(self) -> float | None:
        """Twilio's `Timestamp` in epoch seconds; None when it did not say."""
        ...


def is_stale(event: Stamped, now: float, retention: Retention) -> bool:
    """True when Twilio stamped the event too long ago for it to be news (a replay)."""
    return event.timestamp is not None and now - event.timestamp > retention.stale_after_s
