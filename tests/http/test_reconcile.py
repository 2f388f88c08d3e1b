"""/notify for calls whose webhooks never reached callrelay: Twilio's Calls API fills the gap."""

import pytest

from sandbox.calls import new_call_sid, phone_calls_sdk
from tests.support.env import ACCOUNT_SID


def live_inbound_call_at_twilio(twilio, identity="bob"):
    parent, child = new_call_sid(), new_call_sid()
    twilio.set_call(parent, "in-progress", from_="+15005550006", to="+15005550001",
                    direction="inbound")
    twilio.set_call(child, "in-progress", parent_call_sid=parent, from_="+15005550006",
                    to=f"client:{identity}", direction="outbound-dial")
    return parent, child


def test_unknown_parent_sid_is_looked_up_and_routed_to_the_sdk_child(relay, twilio):
    parent, child = live_inbound_call_at_twilio(twilio)
    answer = relay.notify({"call_sid": parent, "content": {"hi": 1}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [child]
    # What was learned is recorded: the call is now readable and routable by identity.
    legs = {leg["call_sid"]: leg for leg in relay.get(f"/calls/{child}").json["legs"]}
    assert legs[child]["identity"] == "bob" and legs[parent]["leg"] == "parent"
    assert relay.notify({"identity": "bob", "content": 2}).status_code == 201


def test_unknown_child_sid_is_looked_up_with_its_parent(relay, twilio):
    parent, child = live_inbound_call_at_twilio(twilio, identity="carol")
    answer = relay.notify({"call_sid": child, "leg": "parent", "content": {}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [parent]


def test_unknown_everywhere_is_404_and_looked_up_once(relay, twilio):
    sid = new_call_sid()
    for _ in range(3):
        answer = relay.notify({"call_sid": sid, "content": {}})
        assert answer.status_code == 404 and answer.json["error"]["code"] == "call_not_found"
    assert [(r.method, r.path.rsplit("/", 1)[1]) for r in twilio.requests] == [
        ("GET", f"{sid}.json")]


def test_children_without_status_callbacks_are_listed(relay, twilio):
    # The parent came through the Voice URL, but the user's own TwiML set no statusCallback.
    call = phone_calls_sdk(ACCOUNT_SID, identity="dave")
    relay.play(call.answer[:1])
    twilio.set_call(call.child_sid, "ringing", parent_call_sid=call.parent_sid,
                    to="client:dave", direction="outbound-dial")
    answer = relay.notify({"call_sid": call.parent_sid, "content": {}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [call.child_sid]


def test_lookup_failing_is_503_not_404(relay, twilio):
    twilio.fail_next(100_000, status=503)
    answer = relay.notify({"call_sid": new_call_sid(), "content": {}})
    assert answer.status_code == 503 and answer.json["error"]["code"] == "twilio_unavailable"
    assert twilio.messages == []


def sdk_child_known_only_to_twilio(relay, twilio):
    call = phone_calls_sdk(ACCOUNT_SID, identity="erin")
    relay.play(call.answer[:1])
    twilio.set_call(call.child_sid, "in-progress", parent_call_sid=call.parent_sid,
                    to="client:erin", direction="outbound-dial")
    return call


def list_requests(twilio):
    return [r for r in twilio.requests if r.path.endswith("/Calls.json")]


@pytest.mark.parametrize("status", [429, 503])
def test_a_failed_page_of_the_calls_list_is_retried(relay, twilio, status):
    call = sdk_child_known_only_to_twilio(relay, twilio)
    twilio.fail_next(1, status, only="list_calls")
    answer = relay.notify({"call_sid": call.parent_sid, "content": {}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [call.child_sid]
    assert len(list_requests(twilio)) == 2
    assert relay.get(f"/calls/{call.child_sid}").status_code == 200


def test_a_refused_page_of_the_calls_list_is_502_with_twilios_status_and_code(relay, twilio):
    call = sdk_child_known_only_to_twilio(relay, twilio)
    twilio.fail_next(1, 400, 20001, "Invalid ParentCallSid", only="list_calls")
    answer = relay.notify({"call_sid": call.parent_sid, "content": {}})
    assert answer.status_code == 502, answer.json
    error = answer.json["error"]
    assert (error["code"], error["twilio_status"], error["twilio_code"]) == (
        "twilio_refused", 400, 20001)
    assert "Invalid ParentCallSid" in error["message"]
    assert twilio.messages == [] and len(list_requests(twilio)) == 1
