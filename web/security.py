"""Who may call what: Twilio signatures on /twilio/*, bearer tokens on the internal API."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from flask import Request, request
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
from werkzeug.exceptions import HTTPException

from config.settings import Settings
from services.errors import Forbidden, Unauthorized
from web.request_logs import annotate

F = TypeVar("F", bound=Callable[..., Any])


class PublicURLs:
    """Where Twilio reaches callrelay: PUBLIC_BASE_URL, or the proxy-corrected request origin."""

    def __init__(self, public_base_url: str | None) -> None:
        self.public_base_url = public_base_url

    def base(self, req: Request) -> str:
        """The public origin (and prefix) of this request."""
        if self.public_base_url:
            return self.public_base_url
        # ProxyFix (TRUSTED_PROXY_HOPS) has already applied X-Forwarded-Proto/-Host/-Port/-Prefix.
        return f"{req.scheme}://{req.host}{req.root_path}"

    def of(self, req: Request) -> str:
        """The URL Twilio requested, as Twilio signed it."""
        query = req.query_string.decode("utf-8", "replace")
        return self.base(req) + req.path + (f"?{query}" if query else "")


class TwilioSignatures:
    """Checks X-Twilio-Signature (HMAC-SHA1 with the Auth Token, or a Webhook Rules key)."""

    def __init__(self, settings: Settings, urls: PublicURLs) -> None:
        self._auth_token = settings.twilio_auth_token
        self._webhook_secret = settings.twilio_webhook_secret
        self.urls = urls

    def valid(self, req: Request) -> bool:
        """True when the request carries a signature that matches it."""
        signature = req.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return False
        sig_settings = req.headers.get(SIGNATURE_SETTINGS_HEADER)
        secret = self._auth_token
        if sig_settings and self._webhook_secret:
            secret = self._webhook_secret
        url = self.urls.of(req)
        algorithm = get_signature_algorithm(sig_settings)
        validator = RequestValidator(secret)
        if "bodySHA256" in req.args:
            # JSON body: Twilio signs the URL (which carries the body's hash) and no params;
            # the hash must be computed over the raw bytes, before anything parses them.
            body = req.get_data(cache=True).decode("utf-8", "replace")
            return validator.validate(url, body, signature, algorithm=algorithm)
        if algorithm.upper() not in (HMAC_SHA1, HMAC_SHA256):
            return validator.validate(url, req.form, signature, algorithm=algorithm)  # logs why
        # What RequestValidator.validate accepts (the URL without or with its default port),
        # computed lazily: validate always computes both, and a callback's ~20 parameters make
        # each HMAC input cost more than the HMAC. The URL as requested is one of the two, and
        # the one Twilio signs almost always: tried first, before parsing it for the other.
        # `_Form` hands the SDK lists, as it expects.
        params, given = _Form(req.form.lists()), signature.encode()

        def matches(candidate: str) -> bool:
            return hmac.compare_digest(
                validator.compute_signature(candidate, params, algorithm).encode(), given)

        if matches(url):
            return True
        parsed = urlparse(url)
        return any(matches(candidate) for candidate in (remove_port(parsed), add_port(parsed))
                   if candidate != url)

    def required(self, view: F) -> F:
        """Reject (403) any request that does not carry a valid X-Twilio-Signature."""

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                # The request itself, not the context-local proxy that valid would go through
                # at each of its dozen reads (about 0.7 µs each).
                valid = self.valid(request._get_current_object())  # type: ignore[attr-defined]
            except HTTPException:
                raise  # a body over MAX_CONTENT_LENGTH stays a 413
            except Exception as exc:
                # The validator chokes on some malformed requests (an empty bodySHA256 makes it
                # sign the raw body as if it were a form): such a request carries no valid
                # signature.
                annotate(signature_error=type(exc).__name__)
                valid = False
            if not valid:
                raise Forbidden("The X-Twilio-Signature header is missing or does not match "
                                "this request; check TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL.")
            return view(*args, **kwargs)

        return cast(F, wrapper)


class _Form(dict[str, list[str]]):
    """Form values as lists, through the MultiDict `getall` the SDK's signing looks for first."""

    def getall(self, name: str) -> list[str]:
        """Every value of `name`."""
        return self[name]


class BearerTokens:
    """Checks `Authorization: Bearer <token>` against RELAY_API_TOKENS."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self._tokens = tuple(t.encode() for t in tokens)

    def required(self, view: F) -> F:
        """Reject (401) any request without one of the tokens as its bearer token."""

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            presented = token.strip().encode()
            # Compare against every token (no early exit) so timing reveals nothing.
            matches = [hmac.compare_digest(presented, t) for t in self._tokens]
            if scheme.lower() != "bearer" or not presented or not any(matches):
                raise Unauthorized("A valid bearer token is required: Authorization: Bearer "
                                   "<one of RELAY_API_TOKENS>.")
            return view(*args, **kwargs)

        return cast(F, wrapper)
