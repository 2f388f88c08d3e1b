"""The errors callrelay answers with: each carries its HTTP status and a stable code."""

from __future__ import annotations

from typing import Any


class RelayError(Exception):
    """Base of every error that reaches a caller; one handler renders them all as JSON."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}

    def to_json(self) -> dict[str, Any]:
        """The error envelope: {"error": {"code", "message", …details}}."""
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadRequest(RelayError):
    status, code = 400, "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class ValidationFailed(RelayError):
    status, code = 422, "validation_failed"


class ContentTooLarge(RelayError):
    status, code = 413, "content_too_large"


class Unauthorized(RelayError):
    status, code = 401, "unauthorized"


class Forbidden(RelayError):
    status, code = 403, "invalid_signature"


class NotFound(RelayError):
    status, code = 404, "not_found"


class CallNotFound(NotFound):
    code = "call_not_found"


class IdentityNotFound(NotFound):
    code = "identity_not_found"


class ConferenceNotFound(NotFound):
    code = "conference_not_found"


class ForwardingDisabled(NotFound):
    code = "forwarding_disabled"


class EventNotFound(NotFound):
    code = "event_not_found"


class Conflict(RelayError):
    status, code = 409, "conflict"


class LegNotLive(Conflict):
    code = "leg_not_live"


class AmbiguousTarget(Conflict):
    code = "ambiguous_target"


class NoSuchLeg(Conflict):
    code = "no_such_leg"


class TwilioRefused(RelayError):
    """Twilio answered the request with a 4xx that retrying will not change."""

    status, code = 502, "twilio_refused"


class TwilioUnavailable(RelayError):
    """Twilio kept answering 429/5xx, or could not be reached, within the time allowed."""

    status, code = 503, "twilio_unavailable"

    def __init__(self, message: str, retry_after_s: int = 5, **details: Any) -> None:
        super().__init__(message, **details)
        self.headers["Retry-After"] = str(retry_after_s)


class LookupBudgetExhausted(RelayError):
    """Looking a call or identity up at Twilio would exceed this process's lookup budget."""

    status, code = 503, "lookup_budget_exhausted"

    def __init__(self, message: str, retry_after_s: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.headers["Retry-After"] = str(retry_after_s)


class TwilioTimeout(RelayError):
    status, code = 504, "twilio_timeout"


class StoreUnavailable(RelayError):
    """The registry's store cannot be reached; nothing was recorded."""

    status, code = 503, "store_unavailable"

    def __init__(self, message: str = "The call registry is unreachable; retry shortly.",
                 **details: Any) -> None:
        super().__init__(message, **details)
        self.headers["Retry-After"] = "2"
