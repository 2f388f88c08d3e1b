"""One JSON log line per request, with a request id, and the HTTP-boundary metrics."""

from __future__ import annotations

import logging
import random
import re
import time
from typing import Any

from flask import Flask, Request, Response, g, has_request_context, request
from flask.ctx import _AppCtxGlobals
from werkzeug.exceptions import HTTPException

from services.legs.model import is_call_sid
from services.observability.direct_lines import DirectLines
from services.observability.metrics import Metrics

REQUEST_ID_HEADER = "X-Request-ID"
# Heroku's router sends a UUID, other proxies similar tokens; anything else is replaced, so that
# a caller cannot smuggle log lines or kilobytes into the logs through it.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}$")
# Platforms poll these every few seconds, and so does an open console page: their successes
# are logged at DEBUG only.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/console/api/calls",
                           "/console/api/calls/<call_sid>", "/console/static/<path:filename>"})
_UNVERIFIED = frozenset({401, 403})
log = logging.getLogger("callrelay.request")
_lines = DirectLines(log)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to every record logged while serving it."""

    # The request line (DirectLines) carries its request id already.
    DIRECT_LINES_COVER = True

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops a record."""
        if not hasattr(record, "request_id") and has_request_context() and "request_id" in g:
            record.request_id = g.request_id
        return True


def register_request_logs(app: Flask, metrics: Metrics) -> None:
    """A request id, one JSON log line and the HTTP metrics for every request."""
    app.before_request(_start)
    app.after_request(lambda response: _finish(response, metrics))


def install_request_ids() -> None:
    """Add the request id to every record the stdout handler writes while serving a request."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_callrelay", False) and \
                not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


def annotate(**fields: Any) -> None:
    """Add fields to this request's log line: one line a request, not one per thing it did."""
    g.setdefault("log_fields", {}).update(fields)


def _new_request_id() -> str:
    # Unique, not secret: 128 random bits without uuid4's system call for entropy (the random
    # module is reseeded in each forked worker).
    return f"{random.getrandbits(128):032x}"


def _current() -> tuple[Request, _AppCtxGlobals]:
    """This request and its `g`, looked up once: each use of Flask's context-local proxies
    looks them up again (about 0.7 µs for `request.x`, 1.5 to 2.5 µs for `g.get`), and the hooks
    below used them some fifteen times a request."""
    return request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]


def _start() -> None:
    req, ctx = _current()
    ctx.request_started = time.perf_counter()
    given = req.headers.get(REQUEST_ID_HEADER, "")
    ctx.request_id = given if given and _SANE_REQUEST_ID.match(given) else _new_request_id()


def _finish(response: Response, metrics: Metrics) -> Response:
    req, ctx = _current()
    seconds = time.perf_counter() - ctx.get("request_started", time.perf_counter())
    request_id = ctx.get("request_id") or _new_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    rule = req.url_rule
    route = rule.rule if rule is not None else "unmatched"
    method = req.method
    status = response.status_code
    error = _error(response)
    metrics.request(route, method, status, seconds)
    if error.get("code") == "store_unavailable":
        metrics.store_error("request")
    if route == "/notify":
        metrics.notify("sent" if status < 400 else str(error.get("code", status)),
                       error.get("twilio_code"))
    fields: dict[str, Any] = {"request_id": request_id, "method": method,
                              "route": route, "status": status,
                              "duration_ms": round(seconds * 1000, 1)}
    annotated = ctx.get("log_fields", {})
    # A view that knows the call names it (annotate); otherwise it is looked for in the request,
    # unless the request was refused unauthenticated (a forged webhook's CallSid is no call).
    call_sid = annotated.get("call_sid") or (None if status in _UNVERIFIED else
                                             _call_sid(status))
    if call_sid:
        fields["call_sid"] = call_sid
    fields.update(annotated)
    for key in ("code", "twilio_status", "twilio_code"):
        if error.get(key) is not None:
            fields["error" if key == "code" else key] = error[key]
    level = logging.INFO
    if status >= 500:
        level = logging.WARNING
    elif route in _QUIET_ROUTES and status < 400:
        level = logging.DEBUG
    # Straight to the stdout handler when nothing else listens (services/observability/
    # direct_lines.py): the logging module's record, filters and formatter cost a sixth of a
    # status callback.
    _lines.log(level, "request", fields)
    return response


def _error(response: Response) -> dict[str, Any]:
    """The JSON error envelope's fields, for an error answer."""
    if response.status_code < 400 or not response.is_json or response.is_streamed:
        return {}
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _call_sid(status: int) -> str | None:
    """The call SID the request is about: from the URL, the webhook form or the JSON body."""
    candidates: list[Any] = [(request.view_args or {}).get("call_sid")]
    if request.method == "POST" and status != 413:
        try:
            if request.mimetype == "application/x-www-form-urlencoded":
                candidates.append(request.form.get("CallSid"))
            else:
                body = request.get_json(silent=True, force=True)
                if isinstance(body, dict):
                    candidates += [body.get("call_sid"), body.get("CallSid")]
        except HTTPException:  # a body over MAX_CONTENT_LENGTH that the view never read
            pass
    # Only well-formed SIDs: whatever else a caller put in these fields stays out of the logs.
    return next((c for c in candidates if is_call_sid(c)), None)
