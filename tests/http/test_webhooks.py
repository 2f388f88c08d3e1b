"""Twilio-facing routes: signatures, TwiML, and what the registry records."""

import xml.etree.ElementTree as ET

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, RELAY_TOKEN, sign


def legs_of(relay, sid):
    answer = relay.get(f"/calls/{sid}")
    assert answer.status_code == 200, answer.json
    return {leg["call_sid"]: leg for leg in answer.json["legs"]}


def test_outbound_sdk_call_is_tracked(relay):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    legs = legs_of(relay, call.child_sid)
    assert legs[call.parent_sid]["identity"] == "alice" and legs[call.parent_sid]["sdk"]
    assert legs[call.parent_sid]["leg"] == "parent" and legs[call.parent_sid]["live"]
    assert legs[call.child_sid]["status"] == "in-progress" and not legs[call.child_sid]["sdk"]
    assert legs[call.child_sid]["parent_call_sid"] == call.parent_sid


def test_inbound_call_to_sdk_is_tracked(relay):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    legs = legs_of(relay, call.parent_sid)
    assert legs[call.child_sid]["identity"] == "bob" and legs[call.child_sid]["status"] == "in-progress"
    assert not legs[call.parent_sid]["sdk"]


def test_voice_answers_twiml_with_tracked_dial(relay):
    call = sdk_calls_phone(ACCOUNT_SID, number="+14155552671")
    answer = relay.webhook(call.answer[0].path, call.answer[0].params)
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    number = ET.fromstring(answer.data).find("Dial/Number")
    assert number.text == "+14155552671"
    assert number.get("statusCallback").startswith(f"{PUBLIC_BASE}/twilio/status")
    assert number.get("statusCallbackEvent") == "initiated ringing answered completed"


def test_status_answers_204_empty(relay):
    call = phone_calls_sdk(ACCOUNT_SID)
    relay.play(call.answer[:1])
    answer = relay.webhook(call.answer[1].path, call.answer[1].params)
    assert answer.status_code == 204 and answer.data == b""


@pytest.mark.parametrize("forge", ["missing", "wrong token", "tampered", "other url"])
def test_forged_webhooks_are_refused_and_change_nothing(relay, forge):
    call = phone_calls_sdk(ACCOUNT_SID)
    step = call.answer[0]
    params = dict(step.params)
    signature = {
        "missing": "",
        "wrong token": sign(PUBLIC_BASE + step.path, params, token="not-the-auth-token"),
        "tampered": sign(PUBLIC_BASE + step.path, {**params, "From": "+15550000000"}),
        "other url": sign("https://evil.example.com" + step.path, params),
    }[forge]
    answer = relay.webhook(step.path, params, signature=signature)
    assert answer.status_code == 403
    assert answer.json["error"]["code"] == "invalid_signature"
    assert relay.get(f"/calls/{call.parent_sid}").status_code == 404


def test_forged_status_callback_cannot_end_a_live_leg(relay):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    forged = dict(call.hangup[0].params)
    answer = relay.webhook("/twilio/status", forged, signature=sign(PUBLIC_BASE + "/x", forged))
    assert answer.status_code == 403
    assert legs_of(relay, call.child_sid)[call.child_sid]["status"] == "in-progress"


def test_late_and_duplicate_callbacks_never_revive_an_ended_leg(relay):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    relay.play(call.hangup)
    relay.play(call.answer[1:])  # late ringing/initiated/in-progress, replayed
    relay.play(call.hangup)  # and the ends twice
    legs = legs_of(relay, call.parent_sid)
    assert legs[call.child_sid]["status"] == "completed" and not legs[call.child_sid]["live"]
    assert relay.notify({"identity": "bob", "content": {}}).status_code == 404


def test_malformed_webhook_is_a_json_422(relay):
    params = {"CallSid": "CA123", "CallStatus": "ringing", "AccountSid": ACCOUNT_SID}
    answer = relay.webhook("/twilio/status", params)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "validation_failed"
    params = {"CallSid": new_call_sid(), "CallStatus": "dancing"}
    assert relay.webhook("/twilio/status", params).status_code == 422


def test_calls_lists_live_calls_only(relay):
    live = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    ended = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    relay.play(ended.hangup)
    calls = relay.get("/calls").json["calls"]
    assert [c["call_sid"] for c in calls] == [live.parent_sid]
    assert {leg["call_sid"] for leg in calls[0]["legs"]} == {live.parent_sid, live.child_sid}
    # Ended calls stay readable by SID while retained.
    assert relay.get(f"/calls/{ended.child_sid}").json["live"] is False


def test_internal_routes_need_a_token(relay, client):
    assert client.get("/calls").status_code == 401
    assert relay.get("/calls", token="wrong-token-0123456789").status_code == 401
    assert client.get("/calls", headers={"Authorization": f"Basic {RELAY_TOKEN}"}).status_code == 401
    answer = client.get(f"/calls/{new_call_sid()}")
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"


def test_operations_routes(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").status_code == 200


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nowhere").json["error"]["code"] == "not_found"
    answer = client.get("/notify")
    assert answer.status_code == 405 and answer.is_json


@pytest.mark.parametrize("sequence", ["\u00b2", "\u2460", "\u0663", "-1", "1_0",
                                      "9" * 5000])
def test_a_sequence_number_of_other_than_ascii_digits_is_ignored_not_a_500(relay, sequence):
    call = phone_calls_sdk(ACCOUNT_SID)
    relay.play(call.answer[:1])
    step = call.answer[1]
    answer = relay.webhook(step.path, {**step.params, "SequenceNumber": sequence})
    assert answer.status_code == 204, answer.data
    assert legs_of(relay, call.parent_sid)[step.params["CallSid"]]["status"] \
        == step.params["CallStatus"]


def test_a_call_sid_with_a_trailing_newline_is_no_call_sid(relay, twilio):
    call = phone_calls_sdk(ACCOUNT_SID)
    step = call.answer[0]
    sid = step.params["CallSid"] + "\n"
    answer = relay.webhook(step.path, {**step.params, "CallSid": sid})
    assert answer.status_code == 422, answer.data
    assert relay.notify({"call_sid": sid, "content": {}}).status_code == 422
    assert twilio.requests == []
