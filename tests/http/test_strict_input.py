"""Only strict JSON in: /notify refuses what a strict parser would, and no body makes a 500."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from sandbox.calls import sdk_calls_phone
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, RELAY_TOKEN, sign

AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}


def post_raw(client, path: str, body: str, headers: dict[str, str] | None = None):
    """POST `body` exactly as written: the texts below are not what json.dumps would write."""
    return client.post(path, data=body.encode("utf-8", "surrogatepass"),
                       content_type="application/json", headers=headers or {})


@pytest.mark.parametrize("content", [
    '{"price": NaN}', '{"price": Infinity}', "[-Infinity]", '{"price": 1e999}',
    '{"big": -1e400}', "1" + "0" * 400,
    '"{\\"price\\": NaN}"',        # a string that holds JSON: held to the same rule
    '"[1e999]"',
    '{"name": "\\ud800"}', '{"\\udfff": 1}', '"\\"\\\\ud800\\""',
    "[" * 65 + "]" * 65,
])
def test_content_that_is_not_strict_json_is_422_and_never_reaches_twilio(relay, twilio,
                                                                          content):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    body = f'{{"call_sid": "{call.parent_sid}", "content": {content}}}'
    answer = post_raw(relay.client, "/notify", body, AUTH)
    assert answer.status_code == 422, answer.data
    error = answer.json["error"]
    assert (error["code"], error["field"]) == ("validation_failed", "content")
    assert "strict JSON" in error["message"]
    assert twilio.messages == []


@pytest.mark.parametrize("field", ["identity", "idempotency_key"])
def test_a_lone_surrogate_in_a_text_field_is_422(relay, twilio, field):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    target = '"identity": "ali\\ud800ce"' if field == "identity" else \
        f'"call_sid": "{call.parent_sid}", "idempotency_key": "k-\\udc00"'
    answer = post_raw(relay.client, "/notify", f'{{{target}, "content": {{}}}}', AUTH)
    assert answer.status_code == 422, answer.data
    assert (answer.json["error"]["code"], answer.json["error"]["field"]) == (
        "validation_failed", field)
    assert twilio.requests == []


def test_strict_content_at_the_depth_limit_and_astral_characters_are_sent(relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    content = "[" * 64 + '"\\ud83d\\ude00 \u00e9", 1.5e308, -0.0' + "]" * 64
    body = f'{{"call_sid": "{call.parent_sid}", "content": {content}}}'
    answer = post_raw(relay.client, "/notify", body, AUTH)
    assert answer.status_code == 201, answer.json
    [sent] = twilio.messages
    assert sent.content == "[" * 64 + '"\U0001F600 \u00e9",1.5e+308,-0.0' + "]" * 64


@pytest.mark.parametrize("path", ["/notify", "/healthz", "/calls", "/twilio/status",
                                  "/twilio/messages?bodySHA256=00", "/events/dead/x/retry",
                                  "/nowhere"])
@pytest.mark.parametrize("authorized", [False, True])
def test_a_deeply_nested_body_is_a_clean_4xx_on_every_route(client, twilio, caplog, path,
                                                            authorized):
    headers = dict(AUTH) if authorized else {}
    answer = post_raw(client, path, "[" * 1100, headers)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.data[:200])
    assert answer.is_json and answer.json["error"]["code"]
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text
    answer = post_raw(client, path, "[" * 1100 + "]" * 1100, headers)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.data[:200])


def test_a_nested_body_that_parses_but_is_too_deep_is_400_invalid_json(relay, twilio):
    answer = post_raw(relay.client, "/notify", "[" * 1100 + "]" * 1100, AUTH)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("sequence", ["\u00b2", "1" * 30, "-1", "1.5"])
@pytest.mark.parametrize("event", ["conference-start", "participant-join"])
def test_a_conference_callback_with_an_odd_sequence_number_is_recorded(relay, event, sequence):
    params = {"AccountSid": ACCOUNT_SID, "ConferenceSid": "CF" + "a" * 32,
              "FriendlyName": "standup", "StatusCallbackEvent": event,
              "SequenceNumber": sequence, "Timestamp": formatdate(usegmt=True)}  # not stale
    if event == "participant-join":
        params["CallSid"] = sdk_calls_phone(ACCOUNT_SID).parent_sid
    answer = relay.client.post("/twilio/conference", data=params, headers={
        "X-Twilio-Signature": sign(PUBLIC_BASE + "/twilio/conference", params)})
    assert answer.status_code == 204, answer.data
    conference = relay.get("/conferences/standup").json
    assert conference["conference_sid"] == "CF" + "a" * 32


def refuse(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


@pytest.mark.parametrize("path", ["/openapi.json", "/nowhere"])
def test_openapi_and_error_bodies_are_strict_json(client, path):
    json.loads(client.get(path).get_data(as_text=True), parse_constant=refuse)
