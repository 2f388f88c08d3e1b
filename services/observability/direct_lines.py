"""A log line written straight to callrelay's stdout handler, for the one line every request logs.

The logging module builds a LogRecord, runs the handler's filters over every attribute of it
(RequestIdFilter, RedactingFilter) and formats it through JSONFormatter: about a sixth of a
status callback's CPU (BENCHMARKS.md). When callrelay's handler is the only place the line can
go, `DirectLines` writes the same JSON the chain would, redacted by the same RedactingFilter,
field by field. Anywhere else (another handler attached, as pytest's caplog does, a logger
filter, a handler filter that does not declare DIRECT_LINES_COVER) it hands the line to the
logging module unchanged; and so it does if writing fails, so that logging reports it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from services.observability.logs import json_line, timestamp
from services.observability.redaction import RedactingFilter

_CONTAINERS = (list, tuple, dict, set, frozenset)


class DirectLines:
    """Writes one logger's lines as JSON, directly to callrelay's stdout handler when it can."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def log(self, level: int, message: str, fields: dict[str, Any]) -> None:
        """Log `message` with `fields` as extras, at `level`, as `logger.log` would."""
        if not self.logger.isEnabledFor(level):
            return
        target = self._sole_handler(level)
        if target is not None:
            handler, redactor = target
            try:
                line = self._line(level, message, fields, redactor)
                handler.acquire()  # as Handler.handle does around emit
                try:
                    handler.stream.write(line + handler.terminator)  # type: ignore[attr-defined]
                    handler.flush()
                finally:
                    handler.release()
                return
            except Exception:  # noqa: S110 - the logging module reports it below
                pass
        self.logger.handle(self.logger.makeRecord(self.logger.name, level, __file__, 0, message,
                                                  (), None, extra=fields))

    def _sole_handler(self, level: int) -> tuple[logging.Handler, RedactingFilter] | None:
        """callrelay's handler and its redaction, when the line would reach it and nothing else."""
        handlers: list[logging.Handler] = []
        logger: logging.Logger | None = self.logger
        while logger is not None:
            if logger.filters or logger.disabled:
                return None
            handlers += logger.handlers
            if not logger.propagate:
                break
            logger = logger.parent  # type: ignore[assignment]
        if len(handlers) != 1:
            return None
        (handler,) = handlers
        if not getattr(handler, "_callrelay", False) or level < handler.level \
                or not isinstance(handler, logging.StreamHandler):
            return None
        redactors = [f for f in handler.filters if isinstance(f, RedactingFilter)]
        # A filter that could change or drop the line, other than the redaction done here,
        # leaves the line to logging; one that only adds what the fields already hold says so.
        if len(redactors) != 1 or not all(
                f is redactors[0] or getattr(f, "DIRECT_LINES_COVER", False)
                for f in handler.filters):
            return None
        return handler, redactors[0]

    def _line(self, level: int, message: str, fields: dict[str, Any],
              redactor: RedactingFilter) -> str:
        """What JSONFormatter writes for this record once RedactingFilter has cleaned it."""
        entry: dict[str, Any] = {
            "ts": timestamp(time.time()),
            "level": logging.getLevelName(level).lower(),
            "logger": self.logger.name,
            "message": redactor.redact(message),
        }
        for key, value in fields.items():
            if key.startswith("_"):
                continue
            if isinstance(value, str):
                value = redactor.redact(value)
            elif isinstance(value, _CONTAINERS):
                value = redactor.redact_nested(value)
            entry[key] = value
        return json_line(entry)

