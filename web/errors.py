"""One JSON error envelope for everything: RelayError, HTTP errors, and the unexpected."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from services.errors import RelayError

log = logging.getLogger("callrelay.errors")
# werkzeug's errors under the codes callrelay documents where they differ from werkzeug's names:
# a body over MAX_CONTENT_LENGTH is the same fault as content over Twilio's limit.
_CODES = {413: "content_too_large"}


def _answer(status: int, code: str, message: str, **extra: object) -> Response:
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Install handlers so that no error answers with HTML or a stack trace."""

    @app.errorhandler(RelayError)
    def relay_error(exc: RelayError) -> Response:
        response = jsonify(exc.to_json())
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = _CODES.get(exc.code or 500) or (exc.name or "error").lower().replace(" ", "_")
        response = _answer(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _answer(500, "internal_error", "callrelay failed unexpectedly; the error is "
                                               "logged. Retry, and report it if it persists.")
