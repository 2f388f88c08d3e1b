"""At LOG_LEVEL=DEBUG the logs still carry no client identity and no secret of FORWARD_URL."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from app import create_app
from config.settings import Settings
from sandbox.calls import sdk_calls_phone
from tests.forwarding.support import SECRET, Backend, post_json, sdk_message, stop_app
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.relay import Relay

IDENTITY = "jane.doe@example.com"
QUERY_TOKEN = "q7Zp3xLr9Vt2Wm8K"
PASSWORD = "hunter2-but-longer"


@pytest.fixture
def debug_app(tmp_path, twilio) -> Iterator[tuple[Flask, Backend]]:
    backend = Backend()
    url = backend.url.replace("http://", f"http://hooks:{PASSWORD}@") + f"?token={QUERY_TOKEN}"
    env = make_env(tmp_path, twilio, LOG_LEVEL="DEBUG", FORWARD_URL=url, FORWARD_SECRET=SECRET)
    root = logging.getLogger()
    before = root.level
    app = create_app(Settings.from_env(env))
    try:
        yield app, backend
    finally:
        stop_app(app)
        backend.stop()
        root.setLevel(before)


@pytest.fixture
def stdout_log() -> Iterator[io.StringIO]:
    """What callrelay's JSON handler writes (it holds the stdout of its creation)."""
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_callrelay", False)]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_debug_logs_name_no_identity_and_no_forward_url_secret(debug_app, twilio, stdout_log):
    app, backend = debug_app
    relay = Relay(app.test_client())
    # An identity the registry does not know: Twilio's Calls API is listed by its address.
    assert relay.notify({"identity": IDENTITY, "content": {}}).status_code == 404
    assert any(r.query.get("To") == f"client:{IDENTITY}" for r in twilio.requests)
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="ann.lee@example.com"))
    assert post_json(relay.client, sdk_message(call.sdk_sid, {"n": 1})).status_code == 204
    [delivery] = backend.wait_accepted(1)
    assert relay.client.get("/healthz").status_code == 200  # a success logged at DEBUG
    assert delivery.headers["authorization"].startswith("Basic ")  # the URL's userinfo is used
    out = stdout_log.getvalue()
    assert '"level":"debug"' in out  # DEBUG is on: the lines below were not merely silenced
    for secret in (QUERY_TOKEN, PASSWORD, "jane.doe", "jane%2Edoe", "ann.lee"):
        assert secret not in out, secret


@pytest.mark.parametrize("line, kept", [
    ('http://127.0.0.1:4010 "GET /2010-04-01/Accounts/AC1/Calls.json?To=client%3Ajane.doe%40'
     'example.com&Status=ringing&PageSize=20 HTTP/1.1" 200 424',
     'Calls.json?To=[redacted]&Status=[redacted]&PageSize=[redacted] HTTP/1.1" 200 424'),
    ("Retrying after connection broken by 'X': /hooks?token=abc123",
     "/hooks?token=[redacted]"),
    ("POST https://hooks:pa55word@backend.example.com/in failed",
     "https://hooks:[redacted]@backend.example.com/in failed"),
    ("From client:jane.doe@example.com, To client%3aBob", "From client:[redacted], To "
     "client%3a[redacted]"),
])
def test_the_redacting_filter_masks_identities_and_url_secrets(line, kept):
    from services.observability.redaction import RedactingFilter

    assert RedactingFilter().redact(line).endswith(kept)
