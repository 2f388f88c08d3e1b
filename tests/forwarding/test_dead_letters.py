"""Steering dead letters through the internal API: retry all, delete one; and the test event."""

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from tests.forwarding.support import outbox_rows, post_json, sdk_message, wait_until
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN
from tests.support.relay import Relay

AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}


def dead_ids(relay):
    return [e["id"] for e in relay.get("/events/dead").json["events"]]


def message_on(relay, call, content):
    fields = sdk_message(call.sdk_sid, content)
    assert post_json(relay.client, fields).status_code == 204
    return fields, f"msg_{fields['Sid']}"


def test_retry_all_queues_every_dead_event_again(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="1")
    relay = Relay(app.test_client())
    backend.answer = lambda d: 500
    alice = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    bob = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    _, first = message_on(relay, alice, {"to": "alice"})
    _, second = message_on(relay, bob, {"to": "bob"})
    wait_until(lambda: len(dead_ids(relay)) == 2)
    backend.answer = lambda d: 204
    assert relay.client.post("/events/dead/retry").status_code == 401
    retried = relay.client.post("/events/dead/retry", headers=AUTH)
    assert retried.status_code == 202 and retried.json == {"queued": 2}
    backend.wait_accepted(2)
    assert sorted(d.id for d in backend.accepted()) == sorted([first, second])
    assert dead_ids(relay) == []
    assert relay.client.post("/events/dead/retry", headers=AUTH).json == {"queued": 0}


def test_delete_drops_a_dead_event_and_its_duplicate_is_not_queued_again(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="1")
    relay = Relay(app.test_client())
    backend.answer = lambda d: 410
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    fields, event_id = message_on(relay, call, {"n": 1})
    wait_until(lambda: dead_ids(relay) == [event_id])
    assert relay.client.delete(f"/events/dead/{event_id}").status_code == 401
    deleted = relay.client.delete(f"/events/dead/{event_id}", headers=AUTH)
    assert deleted.status_code == 200 and deleted.json == {"id": event_id, "deleted": True}
    assert dead_ids(relay) == []
    again = relay.client.delete(f"/events/dead/{event_id}", headers=AUTH)
    assert again.status_code == 404 and again.json["error"]["code"] == "event_not_found"
    retry = relay.client.post(f"/events/dead/{event_id}/retry", headers=AUTH)
    assert retry.status_code == 404
    assert post_json(relay.client, fields).status_code == 204  # Twilio posts it again
    assert outbox_rows(app) == [(event_id, "done", 1)]
    assert len(backend.deliveries) == 1


def test_test_event_reaches_the_backend_signed_or_dies_without_a_call(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="1")
    relay = Relay(app.test_client())
    forwarding = app.extensions["callrelay.forwarding"]
    event_id = forwarding.send_test("checking the backend")
    [delivery] = backend.wait_accepted(1)
    event = delivery.verified()
    assert delivery.id == event_id and event_id.startswith("test_")
    assert (event["type"], event["data"]) == ("callrelay.test", {"note": "checking the backend"})
    backend.answer = lambda d: 503
    refused = forwarding.send_test("again")
    wait_until(lambda: dead_ids(relay) == [refused])
    [dead] = relay.get("/events/dead").json["events"]
    assert dead["call_sid"] is None and dead["last_error"] == "HTTP 503"


def test_dead_letter_routes_answer_404_when_forwarding_is_off(relay):
    for answer in (relay.client.post("/events/dead/retry", headers=AUTH),
                   relay.client.delete("/events/dead/msg_x", headers=AUTH)):
        assert answer.status_code == 404
        assert answer.json["error"]["code"] == "forwarding_disabled"


def test_retry_all_and_delete_share_no_url(relay):
    allowed = relay.client.options("/events/dead/retry").headers["Allow"]
    assert set(allowed.split(", ")) == {"POST", "OPTIONS"}
    assert relay.client.delete("/events/dead/retry", headers=AUTH).status_code == 405
