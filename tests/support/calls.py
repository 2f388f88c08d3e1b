"""Scripted calls (sandbox/calls.py) as leg events, for the unit tests' stores and fake Twilio."""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.calls import Step
from services.legs.model import LegEvent
from services.store.legs import LegStore


def leg_events(steps: Iterable[Step]) -> list[LegEvent]:
    """The events the webhooks of `steps` carry, in order."""
    return [LegEvent.from_params(step.params) for step in steps]


def record(store: LegStore, steps: Iterable[Step]) -> None:
    """Apply the webhooks of `steps` to the store, as the webhook routes would."""
    for event in leg_events(steps):
        store.apply(event)


def as_twilio_knows(steps: Iterable[Step]) -> list[LegEvent]:
    """Each leg as Twilio's Calls API shows it after `steps`: its last reported state."""
    return list({event.call_sid: event for event in leg_events(steps)}.values())
