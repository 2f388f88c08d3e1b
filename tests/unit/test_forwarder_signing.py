"""Forwarder pieces without a network: Standard Webhooks headers, backoff, event bodies."""

import base64
import json
import time
from datetime import UTC, datetime

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.forwarding.delivery import Backoff, DeliveryOptions, failure_reason, signed_headers
from services.forwarding.events import SdkMessage, leg_event, message_event
from services.legs.model import Leg

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
PARENT, CHILD = "CA" + "1" * 32, "CA" + "2" * 32


def test_headers_verify_with_the_standardwebhooks_library():
    body = '{"type":"call.message","data":{"content":"héllo"}}'
    headers = signed_headers(SECRET, "msg_KX1", body, time.time())
    assert headers["webhook-id"] == "msg_KX1" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body.encode(), headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body.replace("héllo", "hello"), headers)


def test_each_attempt_is_signed_at_its_own_time():
    # Standard Webhooks receivers refuse timestamps over 5 minutes old: a retry an hour later
    # must carry a fresh one (and the same webhook-id).
    late = signed_headers(SECRET, "msg_KX1", "{}", time.time())
    early = signed_headers(SECRET, "msg_KX1", "{}", time.time() - 3600)
    assert late["webhook-id"] == early["webhook-id"]
    Webhook(SECRET).verify("{}", late)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify("{}", early)


def test_backoff_doubles_within_jitter_and_is_capped():
    backoff = Backoff(base_s=10, cap_s=1200)
    for failures, longest in [(1, 10), (2, 20), (5, 160), (8, 1200), (50, 1200)]:
        for _ in range(20):
            assert longest / 2 <= backoff.delay(failures) <= longest


def test_default_attempts_span_roughly_an_hour():
    options = DeliveryOptions()
    waits = [min(options.backoff.cap_s, options.backoff.base_s * 2 ** (n - 1))
             for n in range(1, options.max_attempts)]
    assert 45 * 60 <= sum(waits) <= 75 * 60  # the most it waits; jitter takes up to half off


def test_message_event_body_and_ordering_key():
    leg = Leg(call_sid=CHILD, status="in-progress", parent_sid=PARENT, identity="bob")
    msg = SdkMessage(sid="KX" + "a" * 32, call_sid=CHILD, content={"k": [1]}, sequence_number=4)
    event = message_event(msg, leg, at=0)
    assert (event.id, event.stream) == ("msg_KX" + "a" * 32, PARENT)
    assert json.loads(event.body) == {"type": "call.message", "timestamp": "1970-01-01T00:00:00.000Z",
                                      "data": {"call_sid": PARENT, "leg_sid": CHILD, "leg": "child",
                                               "identity": "bob", "message_sid": msg.sid,
                                               "sequence_number": 4, "content": {"k": [1]}}}


def test_leg_event_id_is_one_per_status():
    ringing = leg_event(Leg(call_sid=PARENT, status="ringing"), at=0)
    answered = leg_event(Leg(call_sid=PARENT, status="in-progress"), at=5)
    assert (ringing.id, answered.id) == (f"leg_{PARENT}_ringing", f"leg_{PARENT}_in-progress")
    assert ringing.stream == answered.stream == PARENT


def test_with_several_secrets_each_signs_the_current_first():
    at = time.time()
    headers = signed_headers((NEW, SECRET), "msg_KX1", "{}", at)
    stamp = datetime.fromtimestamp(int(at), UTC)
    assert headers["webhook-signature"].split(" ") == [
        Webhook(NEW).sign("msg_KX1", stamp, "{}"), Webhook(SECRET).sign("msg_KX1", stamp, "{}")]
    assert Webhook(NEW).verify("{}", headers) == Webhook(SECRET).verify("{}", headers) == {}


def test_signing_needs_a_secret():
    with pytest.raises(ValueError, match="at least one secret"):
        signed_headers((), "msg_KX1", "{}", time.time())


@pytest.mark.parametrize("status, exc, reason", [
    (302, None, "http_3xx"), (401, None, "http_4xx"), (410, None, "http_4xx"),
    (500, None, "http_5xx"), (503, None, "http_5xx"), (101, None, "other"),
    (None, requests.ConnectTimeout(), "timeout"), (None, requests.ReadTimeout(), "timeout"),
    (None, requests.ConnectionError(), "connection"),
    (None, requests.exceptions.ChunkedEncodingError(), "connection"),
    (None, requests.exceptions.InvalidHeader(), "other"),
])
def test_failure_reasons_are_a_fixed_set(status, exc, reason):
    assert failure_reason(status, exc) == reason
