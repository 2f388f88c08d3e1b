"""POST /notify end to end in-process: the real SDK talks HTTP to the Twilio mock."""

import json

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone, sdk_calls_sdk
from tests.support.env import ACCOUNT_SID, OLD_RELAY_TOKEN, RELAY_TOKEN

CONTENT = {"type": "offer", "items": [1, 2, 3], "text": "héllo"}
EXACT = json.dumps(CONTENT, separators=(",", ":"), ensure_ascii=False)


def only_message(twilio):
    assert len(twilio.messages) == 1, twilio.messages
    return twilio.messages[0]


@pytest.mark.parametrize("by", ["parent", "child"])
def test_outbound_call_reaches_the_parent_sdk_leg(relay, twilio, by):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    sid = call.parent_sid if by == "parent" else call.child_sid
    answer = relay.notify({"call_sid": sid, "content": CONTENT})
    assert answer.status_code == 201, answer.json
    (msg,) = answer.json["messages"]
    sent = only_message(twilio)
    assert sent.call_sid == call.parent_sid and sent.content == EXACT
    assert msg == {"sid": sent.sid, "call_sid": call.parent_sid, "account_sid": ACCOUNT_SID,
                   "date_created": msg["date_created"], "leg": "parent", "identity": "alice"}
    assert msg["sid"].startswith("KX") and msg["date_created"]


@pytest.mark.parametrize("by", ["parent", "child"])
def test_inbound_call_reaches_the_child_sdk_leg(relay, twilio, by):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    sid = call.parent_sid if by == "parent" else call.child_sid
    answer = relay.notify({"call_sid": sid, "content": CONTENT})
    assert answer.status_code == 201, answer.json
    assert only_message(twilio).call_sid == call.child_sid
    assert answer.json["messages"][0]["leg"] == "child"
    assert answer.json["messages"][0]["identity"] == "bob"


def test_by_identity(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="dora"))
    answer = relay.notify({"identity": "dora", "content": CONTENT})
    assert answer.status_code == 201
    assert only_message(twilio).call_sid == call.child_sid


def test_identity_on_two_live_calls_gets_both(relay, twilio):
    one = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="erin"))
    two = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="erin"))
    answer = relay.notify({"identity": "erin", "content": [1]})
    assert answer.status_code == 201
    assert {m.call_sid for m in twilio.messages} == {one.child_sid, two.parent_sid}


@pytest.mark.parametrize("leg, expected", [("parent", "parent_sid"), ("child", "child_sid")])
def test_explicit_leg(relay, twilio, leg, expected):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    answer = relay.notify({"call_sid": call.child_sid, "leg": leg, "content": CONTENT})
    assert answer.status_code == 201, answer.json
    assert only_message(twilio).call_sid == getattr(call, expected)


def test_client_to_client_uses_the_given_legs_sdk(relay, twilio):
    call = relay.answered(sdk_calls_sdk(ACCOUNT_SID))
    assert relay.notify({"call_sid": call.child_sid, "content": 1}).status_code == 201
    assert relay.notify({"call_sid": call.parent_sid, "content": 2}).status_code == 201
    assert [m.call_sid for m in twilio.messages] == [call.child_sid, call.parent_sid]


def test_idempotency_key_is_passed_on(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    body = {"call_sid": call.child_sid, "content": CONTENT, "idempotency_key": "order-42"}
    first, second = relay.notify(body), relay.notify(body)
    assert first.status_code == second.status_code == 201
    assert only_message(twilio).idempotency_key == "order-42"
    assert first.json["messages"][0]["sid"] == second.json["messages"][0]["sid"]


def test_old_token_still_works_during_rotation(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    answer = relay.notify({"call_sid": call.child_sid, "content": {}}, token=OLD_RELAY_TOKEN)
    assert answer.status_code == 201


def test_not_yet_ringing_and_ended_legs_are_409(relay, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    relay.play(call.answer[:1])  # only the Voice URL request: no child yet
    answer = relay.notify({"call_sid": call.parent_sid, "content": {}})
    assert answer.status_code == 409 and answer.json["error"]["code"] == "no_such_leg"
    relay.play(call.answer[1:] + call.hangup)
    answer = relay.notify({"call_sid": call.child_sid, "content": {}})
    assert answer.status_code == 409 and answer.json["error"]["code"] == "leg_not_live"
    assert answer.json["error"]["leg"]["status"] == "completed"
    # callrelay may ask Twilio's Calls API about the missing child, but sends nothing.
    assert twilio.messages == [] and [r.method for r in twilio.requests] == ["GET"]


def test_unknown_call_and_identity_are_404(relay, twilio):
    answer = relay.notify({"call_sid": new_call_sid(), "content": {}})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "call_not_found"
    answer = relay.notify({"identity": "nobody", "content": {}})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"


@pytest.mark.parametrize("body, status, code", [
    ({"call_sid": "CA1", "content": {}}, 422, "validation_failed"),
    ({"content": {}}, 422, "validation_failed"),
    ({"call_sid": None, "identity": "bob", "leg": "sdk", "content": {}}, 422,
     "validation_failed"),
    ({"identity": "bob", "content": "{not json"}, 422, "validation_failed"),
    ({"identity": "bob", "content": {"x": "y" * 10_000}}, 413, "content_too_large"),
    ({"identity": "bob", "leg": "middle", "content": {}}, 422, "validation_failed"),
])
def test_bad_input_never_reaches_twilio(relay, twilio, body, status, code):
    relay.answered(phone_calls_sdk(ACCOUNT_SID))
    answer = relay.notify(body)
    assert answer.status_code == status and answer.json["error"]["code"] == code
    assert answer.json["error"]["message"]
    assert twilio.requests == []


def test_malformed_json_is_400(client, twilio):
    answer = client.post("/notify", data=b"{nope", content_type="application/json",
                         headers={"Authorization": f"Bearer {RELAY_TOKEN}"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_json"
    assert twilio.requests == []


def test_the_body_is_read_as_json_whatever_its_content_type(client, relay, twilio):
    # No 415: backends that forget the header (curl -d sends a form type) are served.
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    answer = client.post("/notify", data=json.dumps({"call_sid": call.parent_sid, "content": {}}),
                         content_type="application/x-www-form-urlencoded",
                         headers={"Authorization": f"Bearer {RELAY_TOKEN}"})
    assert answer.status_code == 201, answer.json
    assert only_message(twilio).call_sid == call.parent_sid


def test_oversized_body_is_413_before_it_is_read(client, twilio):
    answer = client.post("/notify", data=b"x" * 200_000, content_type="application/json",
                         headers={"Authorization": f"Bearer {RELAY_TOKEN}"})
    assert answer.status_code == 413 and answer.is_json
    assert answer.json["error"]["code"] == "content_too_large"  # as the README's table says


def test_twilio_refusal_is_502_with_its_code(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.set_call(call.child_sid, "completed")  # Twilio knows better: the call just ended
    answer = relay.notify({"call_sid": call.child_sid, "content": {}})
    assert answer.status_code == 502, answer.json
    error = answer.json["error"]
    assert (error["code"], error["twilio_status"], error["twilio_code"]) == (
        "twilio_refused", 400, 21220)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_twilio_hiccups_are_retried_with_one_idempotency_key(relay, twilio, status):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.fail_next(2, status=status)
    answer = relay.notify({"call_sid": call.child_sid, "content": CONTENT})
    assert answer.status_code == 201, answer.json
    assert only_message(twilio).content == EXACT
    keys = {r.form.get("IdempotencyKey") for r in twilio.requests}
    assert len(twilio.requests) == 3 and len(keys) == 1 and None not in keys


def test_twilio_failing_for_good_is_503_with_retry_after(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.fail_next(1000, status=503, code=20503)
    answer = relay.notify({"call_sid": call.child_sid, "content": {}})
    assert answer.status_code == 503 and answer.json["error"]["code"] == "twilio_unavailable"
    assert int(answer.headers["Retry-After"]) > 0
    assert twilio.messages == []


def test_twilio_hanging_is_504(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.delay = 6  # longer than NOTIFY_DEADLINE_S: Twilio never answers in time
    answer = relay.notify({"call_sid": call.child_sid, "content": {}})
    twilio.delay = 0
    assert answer.status_code == 504 and answer.json["error"]["code"] == "twilio_timeout"
