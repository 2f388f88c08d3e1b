"""The Twilio port: what callrelay asks of Twilio, in its own terms (no SDK types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.legs.model import LegEvent


@dataclass(frozen=True)
class SentMessage:
    """A UserDefinedMessage Twilio accepted."""

    sid: str
    call_sid: str
    account_sid: str
    date_created: str | None
    attempts: int = 1  # requests it took (429s and 5xx are retried with the same key)


class TwilioGateway(Protocol):
    """What callrelay asks of Twilio."""

    # `deadline` (time.monotonic() based) bounds the call, retries included; None: the default.

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """Create a UserDefinedMessage on the call leg `call_sid`."""
        ...

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """The call as Twilio knows it now, or None when Twilio does not know it."""
        ...

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """The legs `<Dial>` created under `parent_sid`, as Twilio knows them now."""
        ...

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        """The live (ringing, in-progress) calls to or from `client:<identity>` Twilio knows."""
        ...

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """Subscribe to the messages the SDK on `call_sid` sends; returns the ZY sid."""
        ...
