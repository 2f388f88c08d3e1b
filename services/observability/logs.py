"""Logging: one JSON object a line on stdout, with request id and call SID where known."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged.
STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime"}


def timestamp(created: float) -> str:
    """A record's time as the lines show it: UTC, ISO 8601, milliseconds (as LogRecord.msecs)."""
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            + f".{int((created - int(created)) * 1000):03d}Z")


def json_line(entry: dict[str, Any]) -> str:
    """One log line's JSON: compact, anything JSON cannot hold written as its str()."""
    return json.dumps(entry, default=str, separators=(",", ":"))


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, message, and the extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items()
                      if k not in STANDARD_ATTRS and not k.startswith("_")})
        if record.exc_text:  # formatted (and redacted) by services/observability/redaction.py
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_line(entry)


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines, at `level` (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level)
    if any(getattr(h, "_callrelay", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    handler._callrelay = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    # The SDK logs every request and response header at INFO, and urllib3 every URL (query
    # string and all: `Calls.json?To=client%3Ajane…`, FORWARD_URL's token) at DEBUG: not
    # ours to ship, whatever LOG_LEVEL says. Their warnings stay, redacted.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
