"""What the console reads and acts through: the same stores and use cases the internal API uses."""

from __future__ import annotations

from dataclasses import dataclass

from services.forwarding.service import Forwarding
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.use_cases.notify import Notifier


@dataclass(frozen=True)
class ConsoleParts:
    """The stores, the Notifier (/notify's use case) and forwarding (None when it is off)."""

    legs: LegStore
    conferences: ConferenceStore
    notifier: Notifier
    forwarding: Forwarding | None
    store_kind: str
