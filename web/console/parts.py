"""What the console reads and acts through: the same stores and use cases the internal API uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.forwarding.service import Forwarding
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.use_cases.notify import Notifier


class Timeline(Protocol):
    """A call's message history, as GET /calls/<sid>/messages shows it."""

    def messages(self, call_sid: str) -> list[dict[str, Any]]:
        """The call's messages both ways, oldest first."""
        ...


@dataclass(frozen=True)
class ConsoleParts:
    """The stores, the Notifier (/notify's use case), forwarding (None when it is off) and the
    message history (None when the store keeps none)."""

    legs: LegStore
    conferences: ConferenceStore
    notifier: Notifier
    forwarding: Forwarding | None
    store_kind: str
    history: Timeline | None = None
