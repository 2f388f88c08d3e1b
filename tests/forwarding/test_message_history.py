"""Messages from Voice SDKs in their call's history: pending, then forwarded or dead."""

from __future__ import annotations

import json

from sandbox.calls import sdk_calls_phone
from tests.forwarding.support import post_form, post_json, sdk_message, wait_until
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay


def entries(relay: Relay, sid: str) -> list[dict]:
    answer = relay.get(f"/calls/{sid}/messages")
    assert answer.status_code == 200, answer.json
    return answer.json["messages"]


def status_of(relay: Relay, sid: str) -> str | None:
    found = entries(relay, sid)
    return found[0]["status"] if found else None


def test_a_message_is_pending_until_the_backend_takes_it(make_app, backend):
    fwd = Relay(make_app(FORWARD_MAX_ATTEMPTS="50").test_client())
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    backend.answer = lambda _: 500
    fields = sdk_message(call.sdk_sid, {"type": "hello", "n": 1})
    assert post_json(fwd.client, fields).status_code == 204
    backend.wait_for(lambda ds: len(ds) >= 1)
    [pending] = entries(fwd, call.child_sid)
    assert pending == {"direction": "from_sdk", "sid": fields["Sid"],
                       "call_sid": call.parent_sid, "leg": "parent", "identity": "alice",
                       "at": pending["at"], "status": "pending", "idempotency_key": None,
                       "size": len('{"type": "hello", "n": 1}'), "attempts": None}
    backend.answer = lambda _: 204
    backend.wait_accepted(1)
    wait_until(lambda: status_of(fwd, call.parent_sid) == "forwarded")
    [forwarded] = entries(fwd, call.parent_sid)
    assert forwarded["attempts"] == len(backend.deliveries) >= 2
    assert "error" not in forwarded
    # Twilio posts the same message again: it was forwarded, and stays so.
    assert post_form(fwd.client, fields).status_code == 204
    assert status_of(fwd, call.parent_sid) == "forwarded"


def test_a_message_the_backend_never_takes_is_dead(make_app, backend):
    fwd = Relay(make_app(FORWARD_MAX_ATTEMPTS="2").test_client())
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    backend.answer = lambda _: 503
    assert post_json(fwd.client, sdk_message(call.sdk_sid, {"n": 1})).status_code == 204
    wait_until(lambda: status_of(fwd, call.parent_sid) == "dead")
    [dead] = entries(fwd, call.parent_sid)
    assert dead["attempts"] == 2
    assert dead["error"] == {"code": "backend_refused", "message": "HTTP 503"}


def test_a_message_with_nowhere_to_go_is_dead_at_once(relay):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))  # no FORWARD_URL here
    assert post_json(relay.client, sdk_message(call.sdk_sid, {"n": 1})).status_code == 204
    [dead] = entries(relay, call.parent_sid)
    assert (dead["direction"], dead["status"], dead["error"]["code"]) == (
        "from_sdk", "dead", "not_forwarded")


def test_a_messages_content_is_kept_only_when_asked(make_app, backend):
    fwd = Relay(make_app(MESSAGE_LOG_CONTENT="on").test_client())
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    fields = {**sdk_message(call.sdk_sid, None), "Content": json.dumps({"answer": 42})}
    assert post_json(fwd.client, fields).status_code == 204
    assert post_json(fwd.client, {**sdk_message(call.sdk_sid, None),
                                  "Content": "not json"}).status_code == 204
    assert [e["content"] for e in entries(fwd, call.parent_sid)] == [{"answer": 42},
                                                                     "not json"]
