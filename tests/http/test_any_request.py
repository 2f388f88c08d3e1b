"""No request makes a 500: generated bodies, headers and form fields at every route, signed and
unsigned webhooks, authorized and unauthorized API calls. Every 4xx is a JSON error.

Twilio (the mock) and the store are healthy and the lookup budget is wide, so that no 5xx is
an honest answer here: any 5xx is a bug.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid
from sandbox.twilio_mock import TwilioMock
from tests.forwarding.support import FAST, SECRET, Backend, stop_app
from tests.support.env import OLD_RELAY_TOKEN, PUBLIC_BASE, RELAY_TOKEN, make_env, sign

SID = new_call_sid()
VALUES = [SID, "CA" + "0" * 32, "CF" + "a" * 32, "KX" + "b" * 32, "client:alice", "alice",
          "+15005550006", "sip:bob@pbx.example.com", "conference:standup", "standup",
          "ringing", "in-progress", "completed", "queued", "conference-start",
          "participant-join", "participant-leave", "parent", "child", "sdk", "\u00b2",
          "1" * 30, "-1", "0", "Fri, 27 Nov 2026 10:00:00 +0000", "not a date", "", " ",
          "application/json"]
TWILIO_FIELDS = ["CallSid", "AccountSid", "From", "To", "CallStatus", "Direction",
                 "ParentCallSid", "SequenceNumber", "Timestamp", "CallbackSource",
                 "ConferenceSid", "FriendlyName", "StatusCallbackEvent", "Sid", "Content",
                 "ContentType"]
NOTIFY_FIELDS = ["call_sid", "identity", "conference", "leg", "content", "idempotency_key"]
CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain",
                 "multipart/form-data", "application/json; charset=latin-1", "", "x/\u00e9"]
HEADERS = ["X-Request-ID", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host",
           "X-Forwarded-Port", "X-Forwarded-Prefix", "X-Twilio-Webhooks-Signature-Settings",
           "I-Twilio-Idempotency-Token", "Accept", "Cookie"]

# Text UTF-8 can carry (form fields, headers), and text with lone surrogates (JSON escapes).
utf8 = st.text(max_size=30)
any_text = st.text(st.characters(exclude_categories=()) | st.characters(categories=["Cs"]),
                   max_size=30)
field_value = st.sampled_from(VALUES) | utf8
json_scalar = (st.none() | st.booleans() | st.sampled_from(VALUES) | any_text
               | st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
               | st.floats(allow_nan=True, allow_infinity=True))
json_value = st.recursive(json_scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(any_text, inner, max_size=4), max_leaves=12)
depth = st.sampled_from([63, 64, 65, 66, 900, 1000, 1100, 3000]) | st.integers(1, 3000)
nested = st.builds(lambda n, o, c: (o * n + c * n), depth,
                   st.sampled_from(["[", '{"a":', '{"content":']),
                   st.sampled_from(["]", "}", ""]))


@dataclass
class Attempt:
    """One generated request."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = ""
    form: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def lenient_json(value: Any) -> bytes:
    """JSON as a sloppy client writes it: NaN, Infinity, escaped lone surrogates."""
    try:
        return json.dumps(value).encode()
    except (ValueError, RecursionError):
        return b"null"


@st.composite
def bodies(draw: st.DrawFn, fields: list[str]) -> tuple[bytes, str, dict[str, str] | None]:
    """A body, its content type, and the form fields when it is a form."""
    kind = draw(st.sampled_from(["form", "json", "shaped", "nested", "bytes"]))
    if kind == "form":
        form = draw(st.dictionaries(st.sampled_from(fields) | utf8, field_value, max_size=8))
        return urlencode(form).encode(), "application/x-www-form-urlencoded", form
    if kind == "json":
        return lenient_json(draw(json_value)), draw(st.sampled_from(CONTENT_TYPES)), None
    if kind == "shaped":
        shaped = draw(st.dictionaries(st.sampled_from(fields), json_value | field_value,
                                      max_size=6))
        return lenient_json(shaped), "application/json", None
    if kind == "nested":
        return draw(nested).encode(), draw(st.sampled_from(CONTENT_TYPES)), None
    return draw(st.binary(max_size=200)), draw(st.sampled_from(CONTENT_TYPES)), None


def route_paths(app: Flask) -> list[tuple[str, list[str]]]:
    """Every route's rule with its methods (the generated path parameters fill it in)."""
    return sorted((rule.rule, sorted(rule.methods or ())) for rule in app.url_map.iter_rules()
                  if rule.endpoint != "static")


@st.composite
def attempts(draw: st.DrawFn, routes: list[tuple[str, list[str]]]) -> Attempt:
    rule, methods = draw(st.sampled_from(routes))
    path = rule
    for param in ("<call_sid>", "<ref>", "<event_id>"):
        if param in path:
            value = draw(st.sampled_from(VALUES) | utf8)
            path = path.replace(param, quote(value, safe="") or "x")
    # Mostly the route's own methods, where the views and their hooks run.
    own = [m for m in methods if m not in ("HEAD", "OPTIONS")]
    method = draw(st.sampled_from(own * 8 + ["HEAD", "OPTIONS", "PUT", "DELETE", "BREW"]))
    twilio = path.startswith("/twilio/")
    body, content_type, form = draw(bodies(TWILIO_FIELDS if twilio else NOTIFY_FIELDS))
    attempt = Attempt(method, path, body, content_type, form)
    for name in draw(st.lists(st.sampled_from(HEADERS), max_size=3, unique=True)):
        attempt.headers[name] = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126),
                                             max_size=40))
    if twilio:
        signing = draw(st.sampled_from(["signed", "unsigned", "forged"]))
        if form is None and draw(st.booleans()):
            attempt.path += f"?bodySHA256={hashlib.sha256(body).hexdigest()}"
        if signing == "signed":
            attempt.headers["X-Twilio-Signature"] = sign(PUBLIC_BASE + attempt.path,
                                                         form if form is not None else {})
        elif signing == "forged":
            attempt.headers["X-Twilio-Signature"] = draw(st.sampled_from(["", "bm9wZQ==", "x"]))
    else:
        token = draw(st.sampled_from([RELAY_TOKEN, OLD_RELAY_TOKEN, None, "wrong-token-000000"]))
        if token is not None:
            attempt.headers["Authorization"] = f"Bearer {token}"
    return attempt


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, twilio_server: TwilioMock) -> Iterator[Flask]:
    backend = Backend()
    env = make_env(tmp_path_factory.mktemp("any-request"), twilio_server,
                   LOOKUP_BUDGET="1000,100000", FORWARD_URL=backend.url, FORWARD_SECRET=SECRET)
    twilio_server.reset()
    app = create_app(Settings.from_env(env), forwarding=FAST)
    yield app
    stop_app(app)
    backend.stop()


def refuse(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


def test_no_request_makes_a_5xx_and_every_4xx_is_a_json_error(app: Flask):
    client = app.test_client()

    @settings(max_examples=1000, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(attempts(route_paths(app)))
    def check(attempt: Attempt) -> None:
        headers = dict(attempt.headers)
        if attempt.content_type:
            headers["Content-Type"] = attempt.content_type
        answer = client.open(attempt.path, method=attempt.method, data=attempt.body,
                             headers=headers)
        assert answer.status_code < 500, (answer.status_code, answer.data[:300])
        if answer.status_code >= 400 and attempt.method != "HEAD":
            error = json.loads(answer.get_data(as_text=True), parse_constant=refuse)["error"]
            assert isinstance(error["code"], str) and isinstance(error["message"], str)

    check()
