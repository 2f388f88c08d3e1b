"""A safety net for the logs: secrets never reach stdout, phone numbers only masked.

The code logs call SIDs, not bodies; this filter catches what slips through anyway (an exception
message quoting a number, a token pasted into a field that gets logged).
"""

from __future__ import annotations

import logging
import re

from services.observability.logs import STANDARD_ATTRS

# E.164 numbers, alone or inside addresses such as sip:+15005550006@example.com.
PHONE_RE = re.compile(r"\+\d{7,15}(?!\d)")
REDACTED = "[redacted]"
# Shorter values would redact innocent words; every secret callrelay holds is longer.
_MIN_SECRET_CHARS = 8


def mask_phone(number: str) -> str:
    """`+15555550006` becomes `+1555****006`: enough to tell numbers apart, not to dial one."""
    if len(number) < 9:
        return number[:2] + "****"
    return number[:5] + "****" + number[-3:]


class RedactingFilter(logging.Filter):
    """Replaces known secrets and masks phone numbers in a record's message and string extras."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_secrets(self, *values: str | None) -> None:
        """Redact these values from now on (tokens, auth tokens, API secrets)."""
        self.secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)

    def redact(self, text: str) -> str:
        """The text without secrets and with phone numbers masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "+" not in text:  # the common case, and a regex scan saved on every field
            return text
        return PHONE_RE.sub(lambda m: mask_phone(m.group()), text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean the record in place; never drops it."""
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key not in STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


def redacting_filter(handler: logging.Handler) -> RedactingFilter:
    """The handler's RedactingFilter, installed on first use (one per handler, shared secrets)."""
    for existing in handler.filters:
        if isinstance(existing, RedactingFilter):
            return existing
    installed = RedactingFilter()
    handler.addFilter(installed)
    return installed


def redact_in_logs(*secrets: str | None) -> None:
    """Never let these values reach callrelay's stdout handler; mask phone numbers there too."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_callrelay", False):  # the handler configure_logging installs
            redacting_filter(handler).add_secrets(*secrets)
