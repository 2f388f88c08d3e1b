"""What the Twilio mock holds and answers: recorded requests and resources, Twilio's errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from werkzeug.wrappers import Response

LIVE_STATUSES = frozenset({"ringing", "in-progress"})
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MAX_CONTENT_CHARS = 10_000


def now() -> str:
    """The current time as Twilio writes dates (RFC 2822)."""
    return format_datetime(datetime.now(UTC))


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the mock received, whatever it answered."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    username: str | None


@dataclass
class RecordedMessage:
    """A UserDefinedMessage the mock accepted."""

    sid: str
    call_sid: str
    content: str
    idempotency_key: str | None
    date_created: str


@dataclass
class RecordedSubscription:
    """A UserDefinedMessageSubscription the mock accepted; `active` turns False on DELETE."""

    sid: str
    call_sid: str
    callback: str
    method: str
    idempotency_key: str | None
    date_created: str
    active: bool = True


@dataclass
class MockCall:
    """A call leg registered with `TwilioMock.set_call`."""

    sid: str
    status: str
    parent_call_sid: str | None = None
    from_: str | None = None
    to: str | None = None
    direction: str = "inbound"
    date_created: str = field(default_factory=now)
    date_updated: str = field(default_factory=now)


class TwilioError(Exception):
    """A Twilio-shaped error answer: HTTP status, Twilio code, message."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        """The JSON error body Twilio sends."""
        body = {"code": self.code, "message": self.message, "status": self.status,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}"}
        return Response(json.dumps(body), self.status, self.headers, mimetype="application/json")


def not_found(path: str) -> TwilioError:
    """Twilio's 404 for a resource it does not know."""
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


class MockState:
    """The state the mock's resource handlers share; `TwilioMock` owns and locks it."""

    account_sid: str
    strict_calls: bool
    on_event: Callable[[str], None] | None
    _calls: dict[str, MockCall]
    _messages: list[RecordedMessage]
    _subscriptions: list[RecordedSubscription]

    def _emit(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)
