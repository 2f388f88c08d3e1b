"""Who may call what: Twilio signatures on /twilio/*, bearer tokens on the internal API."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Request, current_app, g, request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from services.errors import Forbidden, Unauthorized
from web.observability import annotate

F = TypeVar("F", bound=Callable[..., Any])


def public_base(req: Request, settings: Settings) -> str:
    """Where Twilio reaches callrelay: PUBLIC_BASE_URL, or the proxy-corrected request origin."""
    if settings.public_base_url:
        return settings.public_base_url
    # ProxyFix (TRUSTED_PROXY_HOPS) has already applied X-Forwarded-Proto/-Host/-Port/-Prefix.
    return f"{req.scheme}://{req.host}{req.root_path}"


def public_url(req: Request, settings: Settings) -> str:
    """The URL Twilio requested, as Twilio signed it."""
    query = req.query_string.decode("utf-8", "replace")
    return public_base(req, settings) + req.path + (f"?{query}" if query else "")


def _signature_valid(req: Request, settings: Settings) -> bool:
    signature = req.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    sig_settings = req.headers.get(SIGNATURE_SETTINGS_HEADER)
    secret = settings.twilio_auth_token
    if sig_settings and settings.twilio_webhook_secret:
        secret = settings.twilio_webhook_secret
    url = public_url(req, settings)
    params: Any
    if "bodySHA256" in req.args:
        # JSON body: Twilio signs the URL (which carries the body's hash) and no params; the
        # hash must be computed over the raw bytes, before anything parses them.
        params = req.get_data(cache=True).decode("utf-8", "replace")
    else:
        params = req.form
    return RequestValidator(secret).validate(url, params, signature,
                                             algorithm=get_signature_algorithm(sig_settings))


def twilio_signed(view: F) -> F:
    """Reject (403) any request that does not carry a valid X-Twilio-Signature."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings: Settings = current_app.config["SETTINGS"]
        try:
            valid = _signature_valid(request, settings)
        except HTTPException:
            raise  # a body over MAX_CONTENT_LENGTH stays a 413
        except Exception as exc:
            # The validator chokes on some malformed requests (an empty bodySHA256 makes it
            # sign the raw body as if it were a form): such a request is no valid signature.
            annotate(signature_error=type(exc).__name__)
            valid = False
        if not valid:
            raise Forbidden("The X-Twilio-Signature header is missing or does not match this "
                            "request; check TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL.")
        return view(*args, **kwargs)

    return cast(F, wrapper)


def bearer_required(view: F) -> F:
    """Reject (401) any request without one of RELAY_API_TOKENS as its bearer token."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings: Settings = current_app.config["SETTINGS"]
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        presented = token.strip().encode()
        # Compare against every token (no early exit) so timing reveals nothing.
        matches = [hmac.compare_digest(presented, t.encode()) for t in settings.relay_api_tokens]
        if scheme.lower() != "bearer" or not presented or not any(matches):
            raise Unauthorized("A valid bearer token is required: Authorization: Bearer <one "
                               "of RELAY_API_TOKENS>.")
        g.authenticated = True
        return view(*args, **kwargs)

    return cast(F, wrapper)
