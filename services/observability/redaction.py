"""A safety net for the logs: secrets never reach stdout, phone numbers only masked.

The code logs call SIDs, not bodies; this filter catches what slips through anyway (an exception
message quoting a number or a URL, a token pasted into a field that gets logged). Client
identities (`client:alice`, URL-encoded `client%3Aalice`), the values of URL query strings and
the passwords of URLs are personal data or secrets too: masked wherever they appear.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from services.observability.logs import STANDARD_ATTRS

# E.164 numbers, alone or inside addresses such as sip:+15005550006@example.com.
PHONE_RE = re.compile(r"\+\d{7,15}(?!\d)")
# A Voice SDK client's address, plain or URL-encoded: its identity is often an e-mail address.
CLIENT_RE = re.compile(r"(client(?::|%3[Aa]))[^\s\"'&,;<>)\]]+")
# The value of each parameter of a URL's query string, and the password of a URL's userinfo.
QUERY_VALUE_RE = re.compile(r"([?&][A-Za-z0-9_.~%-]{1,64}=)[^&#\s\"'<>]+")
USERINFO_RE = re.compile(r"(//[^/\s:@]{0,128}:)[^@\s/]+@")
REDACTED = "[redacted]"
# Shorter values would redact innocent words; every secret callrelay holds is longer.
_MIN_SECRET_CHARS = 8
_CONTAINERS = (list, tuple, dict, set, frozenset)
# Deeper than this, a container extra is replaced whole rather than walked (or looped on).
_MAX_DEPTH = 8
_EXCEPTION_FORMATTER = logging.Formatter()


def mask_phone(number: str) -> str:
    """`+15555550006` becomes `+1555****006`: enough to tell numbers apart, not to dial one."""
    if len(number) < 9:
        return number[:2] + "****"
    return number[:5] + "****" + number[-3:]


class RedactingFilter(logging.Filter):
    """Replaces known secrets and masks phone numbers in a record's message, extras (strings,
    and strings inside lists, tuples, sets and dicts) and exception text."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_secrets(self, *values: str | None) -> None:
        """Redact these values from now on (tokens, auth tokens, API secrets)."""
        self.secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_CHARS)

    def redact(self, text: str) -> str:
        """The text without secrets, identities or URL secrets, and with phone numbers masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        # Each scan only when its marker is there: the common line has none of them.
        if "client" in text:
            text = CLIENT_RE.sub(lambda m: m.group(1) + REDACTED, text)
        if "=" in text and ("?" in text or "&" in text):
            text = QUERY_VALUE_RE.sub(lambda m: m.group(1) + REDACTED, text)
        if "//" in text and "@" in text:
            text = USERINFO_RE.sub(lambda m: m.group(1) + REDACTED + "@", text)
        if "+" not in text:
            return text
        return PHONE_RE.sub(lambda m: mask_phone(m.group()), text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean the record in place; never drops it."""
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if key in STANDARD_ATTRS:
                continue
            if isinstance(value, str):
                setattr(record, key, self.redact(value))
            elif isinstance(value, _CONTAINERS):  # a copy: the caller's object stays as it was
                setattr(record, key, self._redact_nested(value, 0))
        if record.exc_info or record.exc_text or record.stack_info:
            self._redact_exception(record)
        return True

    def redact_nested(self, value: Any) -> Any:
        """A copy of a container with every string in it redacted."""
        return self._redact_nested(value, 0)

    def _redact_nested(self, value: Any, depth: int) -> Any:
        """A copy of `value` with every string in it redacted."""
        if isinstance(value, str):
            return self.redact(value)
        if not isinstance(value, _CONTAINERS):
            return value
        if depth >= _MAX_DEPTH:
            return REDACTED
        if isinstance(value, dict):
            return {self._redact_nested(k, depth + 1): self._redact_nested(v, depth + 1)
                    for k, v in value.items()}
        items = [self._redact_nested(v, depth + 1) for v in value]
        if isinstance(value, list):
            return items
        if isinstance(value, tuple):
            return tuple(items)
        return frozenset(items) if isinstance(value, frozenset) else set(items)

    def _redact_exception(self, record: logging.LogRecord) -> None:
        """Format the exception once, into exc_text (which formatters print instead), redacted."""
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)


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
