"""The request line written straight to the stdout handler: the same JSON, as redacted, as the
logging module's record, filters and formatter would write."""

from __future__ import annotations

import io
import json
import logging

from services.observability.direct_lines import DirectLines
from services.observability.logs import JSONFormatter
from services.observability.redaction import RedactingFilter
from web.request_logs import RequestIdFilter

SECRET = "s3cret-token-value"


class CountingFormatter(JSONFormatter):
    """JSONFormatter, counting the records the logging module formats."""

    formatted = 0

    def format(self, record: logging.LogRecord) -> str:
        self.formatted += 1
        return super().format(record)


def callrelay_logger() -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own (outside the root's tree) with a handler like configure_logging's."""
    logger = logging.Logger("callrelay.request", logging.INFO)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(CountingFormatter())
    handler._callrelay = True  # type: ignore[attr-defined]
    redactor = RedactingFilter()
    redactor.add_secrets(SECRET)
    handler.addFilter(redactor)
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    return logger, out


FIELDS = {"request_id": "+15005550006", "method": "POST", "route": "/twilio/status",
          "status": 204, "duration_ms": 1.5, "call_sid": "CA" + "a" * 32,
          "note": f"token {SECRET} from client:alice@example.com",
          "message_sids": ["KX1", f"{SECRET}", {"to": "+15005550009"}], "sdk": True}


def entries(out: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for line in lines:
        assert str(line.pop("ts")).endswith("Z")
    return lines


def test_the_direct_line_is_what_the_logging_chain_writes():
    logger, out = callrelay_logger()
    formatter = logger.handlers[0].formatter
    DirectLines(logger).log(logging.INFO, "request", dict(FIELDS))
    assert formatter.formatted == 0  # written directly  # type: ignore[union-attr]
    logger.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, "request", (),
                                    None, extra=dict(FIELDS)))
    direct, chain = entries(out)
    assert direct == chain
    assert direct == {
        "level": "info", "logger": "callrelay.request", "message": "request",
        "request_id": "+1500****006", "method": "POST", "route": "/twilio/status",
        "status": 204, "duration_ms": 1.5, "call_sid": "CA" + "a" * 32,
        "note": "token [redacted] from client:[redacted]",
        "message_sids": ["KX1", "[redacted]", {"to": "+1500****009"}], "sdk": True}
    assert SECRET not in out.getvalue()


def test_below_the_level_nothing_is_written():
    logger, out = callrelay_logger()
    DirectLines(logger).log(logging.DEBUG, "request", dict(FIELDS))
    assert out.getvalue() == ""


def test_with_another_handler_listening_the_line_goes_through_logging():
    logger, out = callrelay_logger()
    records: list[logging.LogRecord] = []
    listener = logging.Handler()
    listener.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(listener)
    DirectLines(logger).log(logging.WARNING, "request", dict(FIELDS))
    (record,) = records
    assert logger.handlers[0].formatter.formatted == 1  # type: ignore[union-attr]
    assert (record.levelname, record.route, record.status) == ("WARNING", "/twilio/status", 204)
    (entry,) = entries(out)
    assert entry["level"] == "warning" and entry["note"] == "token [redacted] from client:[redacted]"


def test_a_filter_it_does_not_know_gets_the_record():
    logger, out = callrelay_logger()
    (handler,) = logger.handlers
    handler.addFilter(lambda record: record.status != 204)
    DirectLines(logger).log(logging.INFO, "request", dict(FIELDS))
    assert out.getvalue() == ""
