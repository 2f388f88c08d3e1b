"""The call_history use case: record each call's messages both ways, and read them back.

Recording is a side note to a delivery: a failure to record is logged and counted, never
raised, so a message Twilio accepted (or a webhook the registry recorded) is answered as such.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from services.errors import RelayError
from services.forwarding.events import SdkMessage, decode_content
from services.legs.model import Leg
from services.store.history import (
    DEAD,
    FAILED,
    FROM_SDK,
    PENDING,
    SENT,
    TO_SDK,
    HistoryEntry,
    MessageHistory,
)
from services.store.outbox import OutboxEvent
from services.twilio.port import SentMessage
from services.use_cases.notify_delivery import Attempt

log = logging.getLogger("callrelay.history")
# The outbox's id of a `call.message` event: its prefix, then the message's KX SID.
MESSAGE_EVENT_PREFIX = "msg_"
# What a failed write was recording (the label of callrelay_history_write_failures_total).
HISTORY_OPERATIONS = ("notify", "sdk_message", "forwarding", "call_ended")


class HistoryObserver(Protocol):
    """What recording the history reports: a write that failed, by operation."""

    def history_write_failed(self, operation: str) -> None:
        """Count one history write that failed (the delivery it describes went on)."""
        ...


def _leg_name(leg: Leg | None) -> str | None:
    return None if leg is None else ("parent" if leg.is_parent else "child")


def _error(error: RelayError) -> dict[str, Any]:
    # Attempts have their own field; the rest is the error as /notify answered it.
    return {k: v for k, v in error.to_json()["error"].items() if k != "attempts"}


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class CallHistory:
    """Records deliveries, SDK messages and their forwarding in the store; reads a call's."""

    def __init__(self, store: MessageHistory, *, keep_content: bool = False,
                 observer: HistoryObserver | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.keep_content = keep_content
        self.observer = observer
        self.clock = clock

    def _safely(self, operation: str, write: Callable[[], object], call_sid: str) -> None:
        try:
            write()
        except Exception as exc:  # recording must never undo what it records
            log.warning("message history not recorded", extra={
                "call_sid": call_sid, "operation": operation, "error": exc.__class__.__name__})
            if self.observer is not None:
                self.observer.history_write_failed(operation)

    def delivered(self, content: str, attempts: Sequence[Attempt]) -> None:
        """Record a /notify's outcome on each target leg, in one write."""
        now = self.clock()
        entries = []
        for a in attempts:
            sent = a.outcome if isinstance(a.outcome, SentMessage) else None
            failed = a.outcome if isinstance(a.outcome, RelayError) else None
            entries.append(HistoryEntry(
                call_sid=a.leg.root_sid, id=sent.sid if sent else f"failed-{uuid.uuid4().hex}",
                direction=TO_SDK, leg_sid=a.leg.call_sid, at=now,
                status=SENT if sent else FAILED, size=len(content),
                sid=sent.sid if sent else None, leg=_leg_name(a.leg), identity=a.leg.identity,
                idempotency_key=a.idempotency_key,
                attempts=sent.attempts if sent else (failed.details.get("attempts", 1)
                                                     if failed else None),
                error=_error(failed) if failed else None,
                content=content if self.keep_content else None))
        if entries:
            self._safely("notify", lambda: self.store.add(entries), entries[0].call_sid)

    def sdk_message(self, msg: SdkMessage, leg: Leg | None, *, forwarded: bool) -> None:
        """Record a message from a Voice SDK: pending when queued for the backend, else dead."""
        call_sid = leg.root_sid if leg is not None else msg.call_sid
        content = msg.content if isinstance(msg.content, str) else json.dumps(
            msg.content, separators=(",", ":"), ensure_ascii=False)
        entry = HistoryEntry(
            call_sid=call_sid, id=msg.sid, direction=FROM_SDK, leg_sid=msg.call_sid,
            at=self.clock(), status=PENDING if forwarded else DEAD, size=msg.size, sid=msg.sid,
            leg=_leg_name(leg), identity=leg.identity if leg is not None else None,
            error=None if forwarded else {"code": "not_forwarded", "message":
                                          "Forwarding of SDK messages is off (FORWARD_URL, "
                                          "FORWARD_EVENTS)."},
            content=content if self.keep_content else None)
        self._safely("sdk_message", lambda: self.store.add([entry]), call_sid)

    def forwarding_settled(self, event: OutboxEvent, status: str, attempts: int,
                           error: str | None) -> None:
        """An SDK message's event was delivered (forwarded) or buried (dead)."""
        if not event.id.startswith(MESSAGE_EVENT_PREFIX):
            return  # a leg update, not a message
        entry_id = event.id.removeprefix(MESSAGE_EVENT_PREFIX)
        detail = {"code": "backend_refused", "message": error} if error else None
        self._safely("forwarding", lambda: self.store.update(
            event.stream, entry_id, status, attempts=attempts, error=detail), event.stream)

    def call_ended(self, leg: Leg) -> None:
        """The call's parent leg ended: its history goes LEG_RETENTION_S after it, as its legs."""
        if leg.ended_at is not None:
            ended_at = leg.ended_at
            self._safely("call_ended", lambda: self.store.call_ended(leg.root_sid, ended_at),
                         leg.root_sid)

    def messages(self, call_sid: str) -> list[dict[str, Any]]:
        """The call's history as the internal API shows it, oldest first."""
        return [self._json(e) for e in self.store.entries(call_sid)]

    def _json(self, e: HistoryEntry) -> dict[str, Any]:
        item: dict[str, Any] = {
            "direction": e.direction, "sid": e.sid, "call_sid": e.leg_sid, "leg": e.leg,
            "identity": e.identity, "at": _time(e.at), "status": e.status,
            "idempotency_key": e.idempotency_key, "size": e.size, "attempts": e.attempts}
        if e.error is not None:
            item["error"] = dict(e.error)
        if self.keep_content:
            item["content"] = None if e.content is None else decode_content(e.content)
        return item
