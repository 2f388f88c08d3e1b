"""Only strict JSON out: whatever an SDK sends, the backend and GET /events/dead get RFC 8259."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.calls import sdk_calls_phone
from services.store.outbox import OutboxEvent
from tests.forwarding.support import post_form, post_json, sdk_message, wait_until
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay


def refuse(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


def strict(raw: bytes) -> Any:
    """Parse as a strict parser would: no NaN or Infinity, no number a double cannot hold, and
    UTF-8 that a strict decoder accepts (a lone surrogate is not valid UTF-8)."""
    value = json.loads(raw.decode("utf-8"), parse_constant=refuse,
                       parse_float=lambda text: _finite(float(text)),
                       parse_int=lambda text: _finite(int(text)))
    for text in _strings(value):
        text.encode("utf-8")  # a lone surrogate (escaped as \\ud800 in the body) fails here
    return value


def _finite(number: Any) -> Any:
    assert abs(number) <= 1.7976931348623157e308, number
    return number


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("raw", [
    '{"price": NaN}', "[Infinity, -Infinity]", '{"big": 1e999}', '{"big": -1E400}',
    '"\\ud800 alone"', '{"\\udfff": 1}', "[" * 1100 + "]" * 1100, "[" * 65 + "]" * 65,
])
@pytest.mark.parametrize("post", [post_json, post_form])
def test_content_that_is_not_strict_json_is_carried_as_its_text(fwd, backend, raw, post):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    fields = {**sdk_message(call.sdk_sid, None), "Content": raw}
    assert post(fwd.client, fields).status_code == 204
    [delivery] = backend.wait_accepted(1)
    assert strict(delivery.body)["data"]["content"] == raw


@pytest.mark.parametrize("raw, content", [
    ('{"price": 1.5, "n": -0, "e": 1e308}', {"price": 1.5, "n": 0, "e": 1e308}),
    ('"\\ud83d\\ude00"', "\U0001F600"),  # a surrogate pair is one character: strict JSON
    ("[" * 64 + "]" * 64, json.loads("[" * 64 + "]" * 64)),
])
def test_strict_content_is_carried_as_json(fwd, backend, raw, content):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    assert post_json(fwd.client, {**sdk_message(call.sdk_sid, None), "Content": raw}
                     ).status_code == 204
    [delivery] = backend.wait_accepted(1)
    assert strict(delivery.body)["data"]["content"] == content


@pytest.mark.parametrize("content, carried", [
    ('"\\ud800 hi"', "\ufffd hi"),          # a lone surrogate UTF-8 cannot carry
    ("NaN", "NaN"), ('{"a": [Infinity]}', '{"a": [Infinity]}'),  # not Twilio's form: as text
    ('{"a": [1, "x"]}', {"a": [1, "x"]}),
])
def test_a_json_body_whose_content_is_not_text_is_carried_strictly(fwd, backend, content,
                                                                   carried):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    fields = sdk_message(call.sdk_sid, None)
    text = json.dumps({k: v for k, v in fields.items() if k != "Content"})
    body = text[:-1] + f', "Content": {content}}}'
    assert post_json(fwd.client, {}, body=body.encode()).status_code == 204
    [delivery] = backend.wait_accepted(1)
    assert strict(delivery.body)["data"]["content"] == carried


CALL, MESSAGE = "CA" + "1" * 32, "KX" + "2" * 32
LEGACY = ('{"type":"call.message","timestamp":"2026-11-27T10:00:00.000Z","data":{"call_sid":"'
          + CALL + '","leg_sid":"' + CALL + '","leg":null,"identity":null,"message_sid":"'
          + MESSAGE + '","sequence_number":1,"content":{"price":NaN,"big":Infinity}}}')


def test_an_event_queued_before_content_was_checked_is_sent_and_listed_strictly(make_app,
                                                                               backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="1")
    backend.answer = lambda d: 500
    app.extensions["callrelay.store"].outbox.enqueue(
        OutboxEvent(id=f"msg_{MESSAGE}", stream=CALL, body=LEGACY))
    [delivery] = backend.wait_for(lambda ds: len(ds) == 1)
    assert strict(delivery.body)["data"]["content"] == '{"price": NaN, "big": Infinity}'
    assert delivery.verified()["data"]["message_sid"] == MESSAGE
    relay = Relay(app.test_client())
    wait_until(lambda: relay.get("/events/dead").json["events"] != [])
    listed = relay.get("/events/dead")
    [dead] = strict(listed.data)["events"]
    assert dead["id"] == f"msg_{MESSAGE}"
    assert dead["event"]["data"]["content"] == '{"price": NaN, "big": Infinity}'
