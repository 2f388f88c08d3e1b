"""The message-history port: what each call's messages became, both ways, kept with its legs.

Twilio keeps no list of UserDefinedMessages, so callrelay keeps one per call: each /notify
delivery to a leg and each message a Voice SDK sent, with its outcome. A call's history is
bounded (`MAX_ENTRIES`, the newest kept) and goes when its legs go: `LEG_RETENTION_S` after
the call ends (`call_ended`), or MAX_CALL_DURATION_S + LEG_RETENTION_S after an entry was
added when no end is ever reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.legs.rules import Retention

# Entries kept per call, the newest: a busy call cannot grow its history without bound.
MAX_ENTRIES = 200
TO_SDK, FROM_SDK = "to_sdk", "from_sdk"
SENT, FAILED = "sent", "failed"
PENDING, FORWARDED, DEAD = "pending", "forwarded", "dead"


@dataclass(frozen=True)
class HistoryEntry:
    """One message of a call: a /notify delivery to a leg, or a message from a Voice SDK."""

    call_sid: str  # the call (its parent leg's SID): the history this entry belongs to
    id: str  # unique within the call: the KX SID, or a made-up one for a failed delivery
    direction: str  # TO_SDK or FROM_SDK
    leg_sid: str
    at: float
    status: str  # SENT or FAILED (to_sdk); PENDING, FORWARDED or DEAD (from_sdk)
    size: int  # characters of content
    sid: str | None = None  # Twilio's KX SID; None when Twilio created no message
    leg: str | None = None  # "parent" or "child"; None when callrelay does not know the leg
    identity: str | None = None
    idempotency_key: str | None = None
    attempts: int | None = None  # requests to Twilio, or deliveries to the backend
    error: Mapping[str, Any] | None = field(default=None, hash=False)
    content: str | None = None  # only with MESSAGE_LOG_CONTENT=true


def history_expires_at(now: float, retention: Retention) -> float:
    """How long an entry added `now` may be kept if its call's end is never reported."""
    return now + retention.max_call_duration_s + retention.leg_retention_s


class MessageHistory(Protocol):
    """The calls' message histories, safe to share between processes."""

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries in one write, each unless its call holds one with its id already.

        Each call keeps its newest MAX_ENTRIES (by `at`); an entry keeps the call's history
        for `history_expires_at` from now.
        """
        ...

    def update(self, call_sid: str, entry_id: str, status: str, *, attempts: int | None = None,
               error: Mapping[str, Any] | None = None) -> bool:
        """Set an entry's status, attempts and error; False when the call holds no such entry."""
        ...

    def call_ended(self, call_sid: str, ended_at: float) -> None:
        """The call's legs ended at `ended_at`: keep its history LEG_RETENTION_S from then."""
        ...

    def entries(self, call_sid: str) -> list[HistoryEntry]:
        """The call's history, oldest first."""
        ...

    def purge(self) -> int:
        """Forget entries whose time has come; how many."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
