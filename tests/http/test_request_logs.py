"""One JSON log line per request, with a request id; secrets and phone numbers never in full."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import sdk_calls_phone
from services.observability.logs import JSONFormatter
from services.observability.redaction import RedactingFilter, mask_phone
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, RELAY_TOKEN, make_env


def request_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "callrelay.request"]


def test_each_request_is_logged_with_route_status_duration_and_call_sid(relay, caplog):
    caplog.set_level(logging.INFO)
    call = sdk_calls_phone(ACCOUNT_SID)
    relay.play(call.answer[:1])
    relay.notify({"call_sid": call.parent_sid, "content": {"secret": "do not log"}})
    relay.get(f"/calls/{call.child_sid}")
    voice, notify, lookup = request_lines(caplog)
    assert (voice.route, voice.method, voice.status, voice.call_sid) == (
        "/twilio/voice", "POST", 200, call.parent_sid)
    assert (notify.route, notify.status, notify.call_sid) == ("/notify", 201, call.parent_sid)
    assert (lookup.route, lookup.call_sid) == ("/calls/<call_sid>", call.child_sid)
    assert all(isinstance(r.duration_ms, float) and len(r.request_id) == 32
               for r in (voice, notify, lookup))
    assert "do not log" not in caplog.text


def test_errors_are_logged_with_their_code_and_malformed_sids_are_not(relay, caplog):
    caplog.set_level(logging.INFO)
    relay.notify({"call_sid": "+15005550006", "content": {}})
    (line,) = request_lines(caplog)
    assert (line.status, line.error) == (422, "validation_failed")
    assert not hasattr(line, "call_sid")


def test_a_refused_requests_call_sid_is_not_logged_as_a_call(relay, client, caplog):
    """Issue #17, item 12: a forged webhook (403) or an unauthenticated /notify (401) names a
    CallSid nobody vouched for: the request line does not carry it as the call."""
    caplog.set_level(logging.INFO)
    call = sdk_calls_phone(ACCOUNT_SID)
    step = call.answer[0]
    assert relay.webhook(step.path, step.params, signature="forged").status_code == 403
    assert relay.notify({"call_sid": call.parent_sid, "content": {}},
                        token="not-a-relay-token-at-all").status_code == 401
    forged, unauthenticated = request_lines(caplog)
    assert (forged.status, unauthenticated.status) == (403, 401)
    assert not hasattr(forged, "call_sid") and not hasattr(unauthenticated, "call_sid")
    assert call.parent_sid not in caplog.text


@pytest.mark.parametrize("given, kept", [
    ("0d5cb5e0-8a36-4c1f-9a9e-1b2f3c4d5e6f", True),     # Heroku's router
    ("rndr-abc.123:xyz", True),
    ("", False),
    ("x" * 200, False),
    ("<script>alert(1)</script>", False),
    ("two words", False),
])
def test_request_id_is_honoured_when_sane_and_returned(client, given, kept):
    answer = client.get("/healthz", headers={"X-Request-ID": given} if given else {})
    returned = answer.headers["X-Request-ID"]
    assert (returned == given) is kept
    if not kept:
        assert len(returned) == 32 and returned.isalnum()


@pytest.fixture
def stdout_log(app) -> Iterator[io.StringIO]:
    """What callrelay's JSON handler writes (it holds the stdout of its creation, not capsys')."""
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_callrelay", False)]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    handler.setStream(previous)  # type: ignore[attr-defined]


def test_request_id_reaches_other_log_lines_and_secrets_are_redacted(relay, twilio,
                                                                     stdout_log):
    call = sdk_calls_phone(ACCOUNT_SID)
    relay.client.post(call.answer[0].path, data=call.answer[0].params,
                      headers={"X-Twilio-Signature": "bm9wZQ==", "X-Request-ID": "req-1"})
    relay.play(call.answer)
    twilio.fail_next(1, status=503)  # a retry logs a line of its own during the request
    relay.notify({"call_sid": call.parent_sid, "content": {"msg": "+15005550006"}})
    logging.getLogger("callrelay.test").warning("token %s and %s from +15005550006",
                                                RELAY_TOKEN, AUTH_TOKEN)
    out = stdout_log.getvalue()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(e.get("request_id") == "req-1" and e["status"] == 403 for e in lines)
    # One line a request: what the webhook did to the leg is on the request's own line.
    hooks = [e for e in lines if e.get("route") == "/twilio/status"]
    assert [e["leg_status"] for e in hooks] == ["initiated", "ringing", "in-progress"]
    retry = [e for e in lines if e["message"] == "twilio attempt failed, retrying"]
    (notify,) = [e for e in lines if e.get("route") == "/notify"]
    assert retry and retry[0]["request_id"] == notify["request_id"]
    assert notify["message_sids"][0].startswith("KX")
    assert RELAY_TOKEN not in out and AUTH_TOKEN not in out and "5550006" not in out
    assert "token [redacted] and [redacted] from +1500****006" in out


def test_mask_phone_keeps_country_prefix_and_last_digits():
    assert mask_phone("+15555550006") == "+1555****006"
    assert mask_phone("+4420") == "+4****"


def test_redacting_filter_cleans_message_args_and_extras():
    handler_filter = RedactingFilter()
    handler_filter.add_secrets("supersecretvalue", None, "short")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s b", ("supersecretvalue",),
                               None)
    record.to = "sip:+447700900123@example.com"
    record.count = 3
    assert handler_filter.filter(record)
    entry = json.loads(JSONFormatter().format(record))
    assert entry["message"] == "a [redacted] b"
    assert entry["to"] == "sip:+4477****123@example.com" and entry["count"] == 3
    assert "short" in handler_filter.redact("short")  # too short to be a secret we hold


def test_log_level_comes_from_settings(tmp_path, twilio):
    root = logging.getLogger()
    before = root.level
    app = create_app(Settings.from_env(make_env(tmp_path, twilio, LOG_LEVEL="warning")))
    try:
        assert root.level == logging.WARNING
    finally:
        root.setLevel(before)
        app.extensions["callrelay.store"].close()


def test_exceptions_and_container_extras_are_redacted_too(app, stdout_log):
    log = logging.getLogger("callrelay.test")
    try:
        raise RuntimeError(f"Twilio said no to +15005550006 with {RELAY_TOKEN}")
    except RuntimeError:
        log.exception("failed for %s", "+15005550007")
    to = ["+15005550006", ("sip:+15005550008@pbx.example.com", 3), {"token": RELAY_TOKEN}]
    meta = {"numbers": {"+15005550009": [AUTH_TOKEN]}, "count": 2, "none": None}
    log.warning("containers", extra={"to": to, "meta": meta})
    out = stdout_log.getvalue()
    failed, containers = (json.loads(line) for line in out.splitlines())
    assert RELAY_TOKEN not in out and AUTH_TOKEN not in out
    assert "555000" not in out  # no number whole, wherever it was
    assert failed["message"] == "failed for +1500****007"
    assert "Twilio said no to +1500****006 with [redacted]" in failed["exception"]
    assert failed["exception"].startswith("Traceback")
    assert containers["to"] == ["+1500****006", ["sip:+1500****008@pbx.example.com", 3],
                                {"token": "[redacted]"}]
    assert containers["meta"] == {"numbers": {"+1500****009": ["[redacted]"]}, "count": 2,
                                  "none": None}
    # The caller's objects are left as they were.
    assert to[0] == "+15005550006" and to[2] == {"token": RELAY_TOKEN}
    assert meta["numbers"] == {"+15005550009": [AUTH_TOKEN]}


def test_redacting_filter_cleans_exception_text_and_stack(app):
    handler_filter = RedactingFilter()
    handler_filter.add_secrets("supersecretvalue")
    try:
        raise ValueError("supersecretvalue +447700900123")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info(),
            sinfo="Stack (most recent call last):\n  supersecretvalue")
    assert handler_filter.filter(record)
    text = logging.Formatter().format(record)
    assert "supersecretvalue" not in text and "+447700900123" not in text
    assert "ValueError: [redacted] +4477****123" in text
    entry = json.loads(JSONFormatter().format(record))
    assert entry["exception"].endswith("ValueError: [redacted] +4477****123")


def test_redacting_filter_copies_any_nesting_and_never_raises():
    handler_filter = RedactingFilter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    record.tags = {frozenset({"+15005550006"}), ("+15005550007",)}
    loop: list = ["+15005550008"]
    loop.append(loop)
    record.loop = loop
    assert handler_filter.filter(record)
    assert record.tags == {frozenset({"+1500****006"}), ("+1500****007",)}
    assert record.loop[0] == "+1500****008" and "555000" not in repr(record.loop)
    assert loop[0] == "+15005550008"
