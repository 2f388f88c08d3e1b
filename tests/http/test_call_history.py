"""GET /calls/<sid>/messages: each /notify delivery on a call, as the real SDK and mock saw it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from services.store.open import open_stores
from tests.http.test_metrics import scrape, value
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.memory_store import MemoryMessageHistory
from tests.support.relay import Relay

CONTENT = {"type": "offer", "price": 42, "text": "héllo"}
# {"type":"offer","price":42,"text":"héllo"} once serialized: 42 characters.


def history(relay, sid):
    answer = relay.get(f"/calls/{sid}/messages")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_a_delivery_is_in_the_history_of_its_call_by_any_leg(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    before = datetime.now(UTC)
    answer = relay.notify({"call_sid": call.parent_sid, "content": CONTENT,
                           "idempotency_key": "order-42"})
    assert answer.status_code == 201
    [sent] = twilio.messages
    by_parent = history(relay, call.parent_sid)
    assert by_parent == history(relay, call.child_sid)
    [entry] = by_parent["messages"]
    assert by_parent["call_sid"] == call.parent_sid
    assert entry == {"direction": "to_sdk", "sid": sent.sid, "call_sid": call.child_sid,
                     "leg": "child", "identity": "bob", "at": entry["at"], "status": "sent",
                     "idempotency_key": "order-42", "size": 42, "attempts": 1}
    assert before <= datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)


def test_deliveries_come_oldest_first_with_retries_counted(relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    assert relay.notify({"call_sid": call.parent_sid, "content": 1}).status_code == 201
    twilio.fail_next(2, status=503)
    assert relay.notify({"call_sid": call.parent_sid, "content": [2]}).status_code == 201
    entries = history(relay, call.parent_sid)["messages"]
    assert [m.sid for m in twilio.messages] == [e["sid"] for e in entries]
    assert [(e["size"], e["attempts"], e["leg"], e["idempotency_key"]) for e in entries] == [
        (1, 1, "parent", None), (3, 3, "parent", None)]


def test_a_refused_delivery_is_failed_with_twilios_status_and_code(relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.set_call(call.child_sid, "completed")  # Twilio refuses: the call just ended
    assert relay.notify({"call_sid": call.child_sid, "content": {}}).status_code == 502
    [entry] = history(relay, call.child_sid)["messages"]
    assert (entry["status"], entry["sid"], entry["attempts"], entry["size"]) == (
        "failed", None, 1, 2)
    error = entry["error"]
    assert (error["code"], error["twilio_status"], error["twilio_code"]) == (
        "twilio_refused", 400, 21220)


def test_a_fan_out_is_in_the_history_of_each_call_with_its_own_key(relay, twilio):
    one = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="erin"))
    two = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="erin"))
    body = {"identity": "erin", "content": CONTENT, "idempotency_key": "k"}
    assert relay.notify(body).status_code == 201
    for call, leg in ((one, one.child_sid), (two, two.parent_sid)):
        [entry] = history(relay, call.parent_sid)["messages"]
        assert (entry["call_sid"], entry["identity"], entry["idempotency_key"]) == (
            leg, "erin", f"k:{leg}")


def test_content_is_kept_only_when_asked(relay, twilio, tmp_path):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert relay.notify({"call_sid": call.parent_sid, "content": CONTENT}).status_code == 201
    assert "content" not in history(relay, call.parent_sid)["messages"][0]
    app = create_app(Settings.from_env(make_env(tmp_path / "content", twilio,
                                                MESSAGE_LOG_CONTENT="true")))
    keeping = Relay(app.test_client())
    call = keeping.answered(sdk_calls_phone(ACCOUNT_SID))
    assert keeping.notify({"call_sid": call.parent_sid, "content": CONTENT}).status_code == 201
    assert history(keeping, call.parent_sid)["messages"][0]["content"] == CONTENT
    app.extensions["callrelay.store"].close()


def test_an_ended_call_keeps_its_history_while_retained(relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert relay.notify({"call_sid": call.parent_sid, "content": {}}).status_code == 201
    relay.play(call.hangup)
    assert len(history(relay, call.child_sid)["messages"]) == 1


def test_a_call_without_messages_has_an_empty_history(relay):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert history(relay, call.child_sid) == {"call_sid": call.parent_sid, "messages": []}


@pytest.mark.parametrize("sid, status, code", [
    (new_call_sid(), 404, "call_not_found"),
    ("CA123", 422, "validation_failed"),
])
def test_an_unknown_or_malformed_call_is_a_json_error(relay, sid, status, code):
    answer = relay.get(f"/calls/{sid}/messages")
    assert answer.status_code == status and answer.json["error"]["code"] == code


def test_the_history_needs_a_token(relay, client):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert client.get(f"/calls/{call.parent_sid}/messages").status_code == 401
    answer = relay.get(f"/calls/{call.parent_sid}/messages", token="wrong-token-0123456789")
    assert answer.status_code == 401


def test_a_history_that_cannot_be_written_fails_no_delivery(settings, twilio):
    stores = open_stores(settings.store_url, settings.retention)
    broken = MemoryMessageHistory()
    broken.unavailable = True
    app = create_app(settings, store=replace(stores, history=broken))
    relay = Relay(app.test_client())
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    answer = relay.notify({"call_sid": call.parent_sid, "content": CONTENT})
    assert answer.status_code == 201 and len(twilio.messages) == 1
    assert value(scrape(app.test_client()), "callrelay_history_write_failures_total",
                 operation="notify") == 1
    # Reading it is another matter: the store is down, and the answer says so.
    answer = relay.get(f"/calls/{call.parent_sid}/messages")
    assert answer.status_code == 503 and answer.json["error"]["code"] == "store_unavailable"
    stores.close()
