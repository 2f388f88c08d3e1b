"""The record_status use case: fold a signed Twilio webhook into the leg registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.forwarding.service import Forwarding
from services.legs.model import Leg, LegEvent
from services.store.legs import LegStore


@dataclass(frozen=True)
class Recorded:
    """What a webhook told callrelay, and the leg as the registry now holds it."""

    event: LegEvent
    leg: Leg


def record_status(legs: LegStore, forwarding: Forwarding | None, params: Mapping[str, str],
                  messages_url: str) -> Recorded:
    """Record a Voice URL request or status callback durably, then tell forwarding about it.

    `messages_url` is where Twilio should post the messages of an SDK on this leg. Raises
    ValidationFailed when the parameters describe no leg, StoreUnavailable when nothing could
    be recorded.
    """
    event = LegEvent.from_params(params)
    leg = legs.apply(event)
    if forwarding is not None:
        forwarding.leg_recorded(event, leg, messages_url)
    return Recorded(event, leg)
