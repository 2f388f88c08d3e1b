"""Signatures validate behind Heroku's and Render's routers and ngrok, and forged ones never do."""

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, make_env, sign

STEP = phone_calls_sdk(ACCOUNT_SID).answer[0]


@pytest.fixture
def app_for(tmp_path, twilio):
    apps = []

    def build(**env):
        overrides = {"PUBLIC_BASE_URL": "", **env}
        app = create_app(Settings.from_env(make_env(tmp_path, twilio, **overrides)))
        apps.append(app)
        return app.test_client()

    yield build
    for app in apps:
        app.extensions["callrelay.store"].close()


def post(client, signed_url, headers, path=STEP.path, params=STEP.params, **kw):
    headers = {"X-Twilio-Signature": sign(signed_url, params), **headers}
    return client.post(path, data=params, headers=headers, **kw)


@pytest.mark.parametrize("signed_url, headers, base_url", [
    # Heroku: Host kept, TLS ended at the router.
    ("https://myapp.herokuapp.com/twilio/voice",
     {"Host": "myapp.herokuapp.com", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443",
      "X-Forwarded-For": "54.1.2.3"}, "http://10.1.2.3:31337"),
    # Render: the same shape.
    ("https://callrelay.onrender.com/twilio/voice",
     {"Host": "callrelay.onrender.com", "X-Forwarded-Proto": "https"}, "http://10.0.0.9:10000"),
    # ngrok with --host-header=rewrite: the public host only in X-Forwarded-Host.
    ("https://abc123.ngrok-free.app/twilio/voice",
     {"Host": "localhost:8000", "X-Forwarded-Host": "abc123.ngrok-free.app",
      "X-Forwarded-Proto": "https"}, "http://localhost:8000"),
    # A proxy on a non-standard port.
    ("https://relay.internal:8443/twilio/voice",
     {"X-Forwarded-Host": "relay.internal", "X-Forwarded-Port": "8443",
      "X-Forwarded-Proto": "https"}, "http://127.0.0.1:8000"),
])
def test_proxied_requests_validate_without_public_base_url(app_for, signed_url, headers,
                                                          base_url):
    client = app_for(TRUSTED_PROXY_HOPS="1")
    answer = post(client, signed_url, headers, base_url=base_url)
    assert answer.status_code == 200, answer.json


def test_callback_urls_in_twiml_use_the_proxied_public_base(app_for):
    client = app_for(TRUSTED_PROXY_HOPS="1")
    answer = post(client, "https://myapp.herokuapp.com/twilio/voice",
                  {"Host": "myapp.herokuapp.com", "X-Forwarded-Proto": "https"})
    assert b'statusCallback="https://myapp.herokuapp.com/twilio/status#' in answer.data


def test_untrusted_forwarded_headers_are_ignored(app_for):
    client = app_for(TRUSTED_PROXY_HOPS="0")
    headers = {"Host": "myapp.herokuapp.com", "X-Forwarded-Proto": "https"}
    assert post(client, "https://myapp.herokuapp.com/twilio/voice", headers).status_code == 403
    assert post(client, "http://myapp.herokuapp.com/twilio/voice", headers).status_code == 200


def test_public_base_url_wins_over_headers(app_for):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com/prefix")
    headers = {"Host": "attacker.example", "X-Forwarded-Proto": "http"}
    assert post(client, "https://relay.example.com/prefix/twilio/voice", headers).status_code == 200
    assert post(client, "http://attacker.example/twilio/voice", headers).status_code == 403


@pytest.mark.parametrize("platform, public", [
    ({"RENDER_EXTERNAL_URL": "https://callrelay.onrender.com"}, "https://callrelay.onrender.com"),
    ({"HEROKU_APP_DEFAULT_DOMAIN_NAME": "callrelay-4a1b2c3d4e5f.herokuapp.com"},
     "https://callrelay-4a1b2c3d4e5f.herokuapp.com"),
])
def test_the_platforms_url_is_the_public_base_and_forwarded_hosts_change_nothing(app_for,
                                                                                 platform,
                                                                                 public):
    client = app_for(TRUSTED_PROXY_HOPS="1", **platform)
    # What the router sends, plus a host a client forged: only the platform's URL counts.
    headers = {"Host": "10.0.0.9:10000", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "attacker.example"}
    answer = post(client, f"{public}/twilio/voice", headers)
    assert answer.status_code == 200, answer.json
    assert f'statusCallback="{public}/twilio/status#'.encode() in answer.data
    assert b"attacker.example" not in answer.data
    assert post(client, "https://attacker.example/twilio/voice", headers).status_code == 403


def test_query_strings_are_part_of_the_signed_url(app_for):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com")
    path = "/twilio/voice?tenant=acme&region=eu"
    ok = post(client, "https://relay.example.com" + path, {}, path=path)
    assert ok.status_code == 200
    stripped = post(client, "https://relay.example.com/twilio/voice", {}, path=path)
    assert stripped.status_code == 403


def test_signature_with_or_without_the_default_port(app_for):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com")
    assert post(client, "https://relay.example.com:443/twilio/voice", {}).status_code == 200


def test_hmac_sha256_webhook_rules_signature(app_for):
    secret = "shared-key-secret-0123456789"
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com", TWILIO_WEBHOOK_SECRET=secret)
    url = "https://relay.example.com/twilio/voice"
    settings_header = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"
    signature = RequestValidator(secret).compute_signature(url, STEP.params,
                                                           algorithm="HMAC_SHA256")
    headers = {"X-Twilio-Signature": signature,
               "X-Twilio-Webhooks-Signature-Settings": settings_header}
    assert client.post(STEP.path, data=STEP.params, headers=headers).status_code == 200
    # A SHA-1 signature presented as SHA-256, or one made with the Auth Token, fails.
    sha1 = RequestValidator(secret).compute_signature(url, STEP.params)
    assert client.post(STEP.path, data=STEP.params, headers={
        **headers, "X-Twilio-Signature": sha1}).status_code == 403
    with_auth_token = RequestValidator(AUTH_TOKEN).compute_signature(url, STEP.params,
                                                                     algorithm="HMAC_SHA256")
    assert client.post(STEP.path, data=STEP.params, headers={
        **headers, "X-Twilio-Signature": with_auth_token}).status_code == 403


def test_oversized_webhook_is_refused_before_it_is_read(app_for):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com")
    answer = client.post("/twilio/status", data=b"CallSid=" + b"A" * 200_000,
                         content_type="application/x-www-form-urlencoded",
                         headers={"X-Twilio-Signature": "x"})
    assert answer.status_code == 413 and answer.is_json


@pytest.mark.parametrize("path, body, content_type, signature", [
    # An empty bodySHA256 made the validator sign a string as if it were a form: a 500.
    ("/twilio/status?bodySHA256=", b'{"CallSid": "x"}', "application/json", "bm9wZQ=="),
    ("/twilio/status?bodySHA256=", b"CallSid=x", "application/x-www-form-urlencoded", "bm9wZQ=="),
    ("/twilio/messages?bodySHA256=", b"{}", "application/json", "bm9wZQ=="),
    # Neither is a bodySHA256 that is not hex, nor a signature that is not ASCII.
    ("/twilio/status?bodySHA256=%ff%fe", b"{}", "application/json", "bm9wZQ=="),
    ("/twilio/voice", b"CallSid=x", "application/x-www-form-urlencoded", "sign\xe9"),
])
def test_malformed_signed_requests_are_refused_not_crashed(app_for, path, body, content_type,
                                                           signature):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com")
    answer = client.post(path, data=body, content_type=content_type,
                         headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 403, answer.data
    assert answer.json["error"]["code"] == "invalid_signature"


def test_oversized_json_webhook_is_still_refused_as_too_large(app_for):
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com")
    answer = client.post("/twilio/messages?bodySHA256=00", data=b"[" + b"0," * 100_000 + b"0]",
                         content_type="application/json", headers={"X-Twilio-Signature": "x"})
    assert answer.status_code == 413 and answer.is_json


def test_signature_checks_agree_with_the_sdks_validate(app_for):
    # The view computes the with/without-port signatures lazily; it must accept and refuse
    # exactly what RequestValidator.validate does.
    client = app_for(PUBLIC_BASE_URL="https://relay.example.com:443")
    assert post(client, "https://relay.example.com/twilio/voice", {}).status_code == 200
    repeated = {**STEP.params, "StirVerstat": "TN-Validation-Passed-A"}
    data = [*repeated.items(), ("StirVerstat", "TN-Validation-Passed-B")]
    url = "https://relay.example.com/twilio/voice"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, MultiDict(data))
    answer = client.post(STEP.path, data=MultiDict(data),
                         headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    one_value = sign(url, repeated)
    assert client.post(STEP.path, data=MultiDict(data),
                       headers={"X-Twilio-Signature": one_value}).status_code == 403
    for forged in ("é" * 28, "x", ""):
        answer = client.post(STEP.path, data=STEP.params, headers={"X-Twilio-Signature": forged})
        assert answer.status_code == 403 and answer.is_json
    unsupported = {"X-Twilio-Signature": sign(url, STEP.params),
                   "X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_MD5"}
    assert client.post(STEP.path, data=STEP.params, headers=unsupported).status_code == 403
