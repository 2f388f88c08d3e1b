"""Which key and algorithm check a Twilio webhook: every combination, written out by hand.

Twilio signs with the Auth Token (HMAC-SHA1) unless the webhook comes from a Webhook Rule,
which signs with its SharedKey's secret and names the algorithm in
X-Twilio-Webhooks-Signature-Settings. An API key secret never signs webhooks. A JSON body is
signed through the URL, which carries the body's SHA-256 (`bodySHA256`), with no parameters.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from config.settings import Settings
from services.errors import RelayError
from web.security import BearerTokens, PublicURLs, TwilioSignatures

BASE = "https://relay.example.com"
AUTH_TOKEN = "auth-token-0123456789abcdef"
API_SECRET = "api-key-secret-0123456789ab"
WEBHOOK_SECRET = "webhook-rules-secret-012345"
KEYS = {"auth token": AUTH_TOKEN, "api secret": API_SECRET, "webhook secret": WEBHOOK_SECRET,
        "wrong": "not-a-key-anyone-holds"}
SHA1 = "HMAC_SHA1"
SHA256 = "HMAC_SHA256"
FORM = {"CallSid": "CA" + "1" * 32, "CallStatus": "ringing", "From": "client:alice"}
JSON_BODY = json.dumps({"CallSid": "CA" + "1" * 32, "Event": "message"}).encode()
ON = "webhook secret configured"
OFF = "no webhook secret"


def checker(configured: str) -> TwilioSignatures:
    settings = Settings(twilio_account_sid="AC" + "0" * 32, twilio_auth_token=AUTH_TOKEN,
                        relay_api_tokens=("t" * 32,), twilio_api_key="SK" + "0" * 32,
                        twilio_api_secret=API_SECRET,
                        twilio_webhook_secret=WEBHOOK_SECRET if configured == ON else None)
    return TwilioSignatures(settings, PublicURLs(BASE))


def settings_header(algorithm: str | None) -> dict[str, str]:
    if algorithm is None:
        return {}
    value = f"key=webhooks_sharedkey_0123,algorithm={algorithm}"
    return {"X-Twilio-Webhooks-Signature-Settings": value}


def check(configured: str, body: str, signed_with: str, algorithm: str,
          header: str | None, *, tamper: bool = False) -> bool:
    """Sign a webhook as described, send it through a request context, and ask `valid`."""
    validator = RequestValidator(KEYS[signed_with])
    app = Flask(__name__)
    if body == "form":
        url = f"{BASE}/twilio/status"
        signature = validator.compute_signature(url, FORM, algorithm=algorithm)
        sent = {**FORM, "CallStatus": "completed"} if tamper else FORM
        context = app.test_request_context("/twilio/status", method="POST", data=sent,
                                           headers={"X-Twilio-Signature": signature,
                                                    **settings_header(header)})
    else:
        digest = hashlib.sha256(JSON_BODY).hexdigest()
        path = f"/twilio/messages?bodySHA256={digest}"
        signature = validator.compute_signature(BASE + path, {}, algorithm=algorithm)
        sent_body = JSON_BODY.replace(b"message", b"massage") if tamper else JSON_BODY
        context = app.test_request_context(path, method="POST", data=sent_body,
                                           content_type="application/json",
                                           headers={"X-Twilio-Signature": signature,
                                                    **settings_header(header)})
    with context as ctx:
        return checker(configured).valid(ctx.request)


# (configured, body, signed with, algorithm, Signature-Settings header's algorithm) → valid
TABLE = [
    # The Auth Token's HMAC-SHA1, no Signature-Settings header: the classic webhook.
    (OFF, "form", "auth token", SHA1, None, True),
    (OFF, "json", "auth token", SHA1, None, True),
    (ON, "form", "auth token", SHA1, None, True),
    (ON, "json", "auth token", SHA1, None, True),
    # Without the header the webhook secret is not the key, even when configured.
    (ON, "form", "webhook secret", SHA1, None, False),
    (ON, "json", "webhook secret", SHA1, None, False),
    (ON, "form", "webhook secret", SHA256, None, False),
    # Without the header the algorithm is SHA-1: a SHA-256 signature does not match.
    (OFF, "form", "auth token", SHA256, None, False),
    (OFF, "json", "auth token", SHA256, None, False),
    # A Webhook Rule: its secret and the header's algorithm.
    (ON, "form", "webhook secret", SHA256, SHA256, True),
    (ON, "json", "webhook secret", SHA256, SHA256, True),
    (ON, "form", "webhook secret", SHA1, SHA1, True),
    (ON, "json", "webhook secret", SHA1, SHA1, True),
    # A Webhook Rule's header makes the webhook secret the only key.
    (ON, "form", "auth token", SHA256, SHA256, False),
    (ON, "json", "auth token", SHA256, SHA256, False),
    (ON, "form", "auth token", SHA1, SHA1, False),
    # The header's algorithm, not another.
    (ON, "form", "webhook secret", SHA1, SHA256, False),
    (ON, "json", "webhook secret", SHA1, SHA256, False),
    (ON, "form", "webhook secret", SHA256, SHA1, False),
    # A header but no webhook secret configured: the Auth Token, with the header's algorithm.
    (OFF, "form", "auth token", SHA256, SHA256, True),
    (OFF, "json", "auth token", SHA256, SHA256, True),
    (OFF, "form", "auth token", SHA1, SHA256, False),
    (OFF, "form", "webhook secret", SHA256, SHA256, False),
    # An API key secret signs no webhook, whatever the header.
    (OFF, "form", "api secret", SHA1, None, False),
    (OFF, "json", "api secret", SHA1, None, False),
    (ON, "form", "api secret", SHA256, SHA256, False),
    (ON, "json", "api secret", SHA1, None, False),
    # A key nobody configured.
    (OFF, "form", "wrong", SHA1, None, False),
    (ON, "json", "wrong", SHA256, SHA256, False),
]


@pytest.mark.parametrize(("configured", "body", "signed_with", "algorithm", "header", "valid"),
                         TABLE)
def test_which_signatures_are_valid(configured, body, signed_with, algorithm, header, valid):
    assert check(configured, body, signed_with, algorithm, header) is valid


@pytest.mark.parametrize(("configured", "body", "signed_with", "algorithm", "header"), [
    (OFF, "form", "auth token", SHA1, None),
    (OFF, "json", "auth token", SHA1, None),
    (ON, "form", "webhook secret", SHA256, SHA256),
    (ON, "json", "webhook secret", SHA256, SHA256),
])
def test_a_changed_body_no_longer_matches(configured, body, signed_with, algorithm, header):
    assert check(configured, body, signed_with, algorithm, header, tamper=True) is False


def test_an_unsigned_request_is_not_valid():
    with Flask(__name__).test_request_context("/twilio/status", method="POST",
                                              data=FORM) as ctx:
        assert checker(OFF).valid(ctx.request) is False


@pytest.mark.parametrize(("signed_url", "valid"), [
    (f"{BASE}/twilio/status", True),
    ("https://relay.example.com:443/twilio/status", True),
    ("https://relay.example.com:8443/twilio/status", False),
    ("http://relay.example.com/twilio/status", False),
    (f"{BASE}/twilio/voice", False),
])
def test_the_url_signed_is_the_public_one_with_or_without_its_default_port(signed_url, valid):
    signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_url, FORM)
    with Flask(__name__).test_request_context(
            "/twilio/status", base_url="http://10.0.0.7:8000", method="POST", data=FORM,
            headers={"X-Twilio-Signature": signature}) as ctx:
        assert checker(OFF).valid(ctx.request) is valid


@pytest.mark.parametrize(("public_base_url", "url", "expected"), [
    (None, "http://10.0.0.7:8000/twilio/status", "http://10.0.0.7:8000/twilio/status"),
    (None, "https://relay.example.com/twilio/status?a=1&b=2",
     "https://relay.example.com/twilio/status?a=1&b=2"),
    (BASE, "http://10.0.0.7:8000/twilio/status?x=%C3%A9", f"{BASE}/twilio/status?x=%C3%A9"),
    ("", "http://10.0.0.7:8000/twilio/voice", "http://10.0.0.7:8000/twilio/voice"),
])
def test_public_urls(public_base_url, url, expected):
    with Flask(__name__).test_request_context(url) as ctx:
        assert PublicURLs(public_base_url).of(ctx.request) == expected


def test_a_query_that_is_not_utf8_is_read_with_replacement_characters():
    # WSGI hands the query string over as latin-1 text: here the raw byte 0xFF.
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/twilio/status",
               "QUERY_STRING": "x=%ff&y=\xff", "SERVER_NAME": "10.0.0.7", "SERVER_PORT": "8000",
               "wsgi.url_scheme": "http"}
    with Flask(__name__).request_context(environ) as ctx:
        assert PublicURLs(BASE).of(ctx.request) == f"{BASE}/twilio/status?x=%ff&y=\ufffd"


# --- the decorators: 403 for a bad signature, 401 for a bad bearer token ---------------------

def guarded_app(configured: str = OFF) -> Flask:
    app = Flask(__name__)
    signatures = checker(configured)
    tokens = BearerTokens(("token-one-0123456789", "token-two-0123456789"))

    @app.errorhandler(RelayError)
    def relay_error(error: RelayError):
        return error.to_json(), error.status

    @app.post("/twilio/status")
    @signatures.required
    def hook():
        return "hooked"

    @app.get("/api")
    @tokens.required
    def api():
        return "served"

    return app


def test_a_signed_webhook_reaches_the_view_and_a_forged_one_is_403():
    client = guarded_app().test_client()
    url = f"{BASE}/twilio/status"
    good = RequestValidator(AUTH_TOKEN).compute_signature(url, FORM)
    answer = client.post("/twilio/status", base_url=BASE, data=FORM,
                         headers={"X-Twilio-Signature": good})
    assert (answer.status_code, answer.text) == (200, "hooked")
    forged = client.post("/twilio/status", base_url=BASE, data=FORM,
                         headers={"X-Twilio-Signature": "bm9wZQ=="})
    assert forged.status_code == 403
    assert forged.json == {"error": {"code": "invalid_signature", "message": (
        "The X-Twilio-Signature header is missing or does not match this request; check "
        "TWILIO_AUTH_TOKEN and PUBLIC_BASE_URL.")}}


def test_a_request_the_validator_chokes_on_is_403_not_500():
    client = guarded_app().test_client()
    # Not UTF-8 in the query: reading its arguments fails before any signature is checked.
    answer = client.post("/twilio/status?x=%ff", base_url=BASE, data=FORM,
                         headers={"X-Twilio-Signature": "bm9wZQ=="},
                         environ_overrides={"QUERY_STRING": "x=\xff"})
    assert answer.status_code == 403


@pytest.mark.parametrize(("authorization", "served"), [
    ("Bearer token-one-0123456789", True),
    ("Bearer token-two-0123456789", True),
    ("bearer token-two-0123456789", True),
    ("BEARER token-one-0123456789", True),
    ("Bearer  token-one-0123456789 ", True),
    ("Bearer token-one-012345678", False),
    ("Bearer token-one-0123456789x", False),
    ("Basic token-one-0123456789", False),
    ("Bearer", False),
    ("Bearer ", False),
    ("token-one-0123456789", False),
    ("", False),
    (None, False),
])
def test_bearer_tokens(authorization, served):
    client = guarded_app().test_client()
    answer = client.get("/api", headers={"Authorization": authorization} if authorization
                        else {})
    if served:
        assert (answer.status_code, answer.text) == (200, "served")
    else:
        assert answer.status_code == 401
        assert answer.json == {"error": {"code": "unauthorized", "message": (
            "A valid bearer token is required: Authorization: Bearer <one of "
            "RELAY_API_TOKENS>.")}}


def test_no_configured_token_serves_nobody():
    app = Flask(__name__)

    @app.errorhandler(RelayError)
    def relay_error(error: RelayError):
        return error.to_json(), error.status

    @app.get("/api")
    @BearerTokens(()).required
    def api():
        return "served"

    assert app.test_client().get("/api", headers={"Authorization": "Bearer x"}).status_code == 401


def test_a_json_body_that_is_not_utf8_is_invalid_not_an_error():
    body = b'{"CallSid": "\xff"}'
    path = f"/twilio/messages?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(BASE + path, {})
    with Flask(__name__).test_request_context(path, method="POST", data=body,
                                              content_type="application/json",
                                              headers={"X-Twilio-Signature": signature}) as ctx:
        assert checker(OFF).valid(ctx.request) is False


@pytest.mark.parametrize("algorithm", ["HMAC_MD5", "hmac_sha512"])
def test_an_algorithm_twilio_does_not_use_is_invalid_not_an_error(algorithm):
    url = f"{BASE}/twilio/status"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, FORM)  # SHA-1
    with Flask(__name__).test_request_context(
            "/twilio/status", method="POST", data=FORM,
            headers={"X-Twilio-Signature": signature, **settings_header(algorithm)}) as ctx:
        assert checker(OFF).valid(ctx.request) is False


def test_a_lowercase_algorithm_in_the_header_is_read_as_the_algorithm():
    url = f"{BASE}/twilio/status"
    signature = RequestValidator(WEBHOOK_SECRET).compute_signature(url, FORM,
                                                                    algorithm="HMAC_SHA256")
    with Flask(__name__).test_request_context(
            "/twilio/status", method="POST", data=FORM,
            headers={"X-Twilio-Signature": signature,
                     **settings_header("hmac_sha256")}) as ctx:
        assert checker(ON).valid(ctx.request) is True
