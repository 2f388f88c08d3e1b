"""The Twilio gateway, built on first use rather than at start-up.

The REST adapter imports the SDK's HTTP stack (`requests`, urllib3 and their dependencies:
about 5 MiB of a worker's memory, BENCHMARKS.md) and builds its session as it is made. A worker
that only takes webhooks never needs it; the first /notify, lookup or subscription of a worker
builds it, once, and pays the imports (tens of ms) then.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from services.legs.model import LegEvent
from services.twilio.port import SentMessage, TwilioGateway


class LazyGateway:
    """A TwilioGateway that builds the real one with `build` when first asked anything."""

    def __init__(self, build: Callable[[], TwilioGateway]) -> None:
        self._build = build
        self._gateway: TwilioGateway | None = None
        self._guard = threading.Lock()

    def gateway(self) -> TwilioGateway:
        """The real gateway, built on the first call."""
        if self._gateway is None:
            with self._guard:  # two first requests at once build one gateway
                if self._gateway is None:
                    self._gateway = self._build()
        return self._gateway

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """TwilioGateway.send_message."""
        return self.gateway().send_message(call_sid, content, idempotency_key,
                                           deadline=deadline)

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """TwilioGateway.fetch_call."""
        return self.gateway().fetch_call(call_sid, deadline=deadline)

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """TwilioGateway.child_calls."""
        return self.gateway().child_calls(parent_sid, deadline=deadline)

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        """TwilioGateway.calls_for_client."""
        return self.gateway().calls_for_client(identity, deadline=deadline)

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """TwilioGateway.subscribe."""
        return self.gateway().subscribe(call_sid, callback_url, idempotency_key)
