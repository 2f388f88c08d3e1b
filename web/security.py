"""Who may call what: Twilio signatures on /twilio/*, bearer tokens on the internal API."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from flask import Request, current_app, g, request
from twilio.request_validator import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    add_port,
    get_signature_algorithm,
    remove_port,
)

from config.settings import Settings
from services.errors import Forbidden, Unauthorized

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
    algorithm = get_signature_algorithm(sig_settings)
    validator = RequestValidator(secret)
    if "bodySHA256" in req.args:
        # JSON body: Twilio signs the URL (which carries the body's hash) and no params; the
        # hash must be computed over the raw bytes, before anything parses them.
        body = req.get_data(cache=True).decode("utf-8", "replace")
        return validator.validate(url, body, signature, algorithm=algorithm)
    if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
        return validator.validate(url, req.form, signature, algorithm=algorithm)  # logs why
    # What RequestValidator.validate accepts (the URL without or with its default port), but
    # computed lazily: validate always computes both, and a callback's ~20 parameters make
    # each HMAC input cost more than the HMAC. `_Form` hands the SDK lists, not exceptions.
    params, given = _Form(req.form.lists()), signature.encode()
    parsed = urlparse(url)
    return any(hmac.compare_digest(
        validator.compute_signature(candidate, params, algorithm).encode(), given)
        for candidate in (remove_port(parsed), add_port(parsed)))


class _Form(dict[str, list[str]]):
    """Form values as lists, through the MultiDict `getall` the SDK's signing looks for first."""

    def getall(self, name: str) -> list[str]:
        """Every value of `name`."""
        return self[name]


def twilio_signed(view: F) -> F:
    """Reject (403) any request that does not carry a valid X-Twilio-Signature."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings: Settings = current_app.config["SETTINGS"]
        if not _signature_valid(request, settings):
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
