"""The record_status use case: fold a signed Twilio webhook into the leg registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.forwarding.service import Forwarding
from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention, is_stale
from services.store.legs import LegStore
from services.use_cases.call_history import CallHistory

log = logging.getLogger("callrelay.webhooks")


@dataclass(frozen=True)
class Recorded:
    """What a webhook told callrelay, and the leg as the registry now holds it.

    `leg` is None when the callback was refused as a replay (its Timestamp is stale).
    """

    event: LegEvent
    leg: Leg | None


def record_status(legs: LegStore, forwarding: Forwarding | None, params: Mapping[str, str],
                  messages_url: str, retention: Retention, now: float | None = None, *,
                  voice_request: bool = False, history: CallHistory | None = None) -> Recorded:
    """Record a Voice URL request or status callback durably, then tell forwarding about it.

    `voice_request`: the parameters are a Voice URL request's, which always describes a parent
    leg (LegEvent.from_voice_request). `messages_url` is where Twilio should post the messages
    of an SDK on this leg. A callback
    stamped longer ago than `retention.stale_after_s` records nothing (acknowledged all the
    same, so Twilio does not retry it). Raises ValidationFailed when the parameters describe
    no leg, StoreUnavailable when nothing could be recorded.
    """
    event = (LegEvent.from_voice_request(params) if voice_request
             else LegEvent.from_params(params))
    now = time.time() if now is None else now
    if is_stale(event, now, retention):
        log.warning("stale callback ignored: Twilio stamped it too long ago", extra={
            "call_sid": event.call_sid, "reported": event.status,
            "age_s": round(now - (event.timestamp or now))})
        return Recorded(event, None)
    leg = legs.apply(event)
    # A forgotten leg answered from its tombstone is no news for the backends.
    if leg.forgotten:
        return Recorded(event, leg)
    if forwarding is not None:
        forwarding.leg_recorded(event, leg, messages_url)
    # The callback that ends the parent leg (Twilio then ends its children), not the ones
    # after it, times the call's history out. A child may end while its parent goes on.
    if history is not None and leg.is_parent and leg.is_ended and event.status == leg.status:
        history.call_ended(leg)
    return Recorded(event, leg)
