"""Delivery to the backend: at least once, in order per call, across outages and restarts."""

import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import free_port
from tests.forwarding.support import (
    Backend,
    outbox_rows,
    post_form,
    post_json,
    sdk_message,
    wait_until,
)
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay


def send(relay, call, n, start=1):
    """Post n messages on the call's SDK leg; returns their webhook-ids in order."""
    ids = []
    for seq in range(start, start + n):
        fields = sdk_message(call.sdk_sid, {"n": seq}, seq=seq)
        post = post_json if seq % 2 else post_form
        assert post(relay.client, fields).status_code == 204
        ids.append(f"msg_{fields['Sid']}")
    return ids


def assert_in_order(deliveries, ids):
    """Each id accepted once; no id attempted before the one before it was accepted."""
    accepted = [d.id for d in deliveries if 200 <= d.status < 300]
    assert accepted == ids
    attempted = [d.id for d in deliveries if d.id in ids]
    assert attempted == sorted(attempted, key=ids.index)


def test_backend_failing_for_a_while_gets_every_event_once_in_order(fwd, backend):
    failures = iter(range(5))
    backend.answer = lambda d: 503 if next(failures, None) is not None else 204
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    ids = send(fwd, call, 4)
    backend.wait_accepted(4)
    assert_in_order(backend.deliveries, ids)
    assert sum(d.status == 503 for d in backend.deliveries) == 5
    for delivery in backend.deliveries:  # failed attempts were signed too, with the same id
        assert delivery.verified()["data"]["message_sid"] == delivery.id.removeprefix("msg_")
    with pytest.raises(WebhookVerificationError):
        backend.deliveries[0].verified(secret="whsec_" + "A" * 43)


def test_backend_unreachable_then_started(make_app, tmp_path):
    port = free_port()
    app = make_app(FORWARD_URL=f"http://127.0.0.1:{port}/hooks")
    relay = Relay(app.test_client())
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    ids = send(relay, call, 3)
    # Wait for a failed attempt (connection refused) to be recorded, then bring the backend up.
    wait_until(lambda: any(attempts for _, _, attempts in outbox_rows(app)))
    late = Backend(port=port)
    try:
        late.wait_accepted(3)
        assert_in_order(late.deliveries, ids)
    finally:
        late.stop()


def test_one_failing_call_does_not_hold_up_another(fwd, backend):
    stuck = fwd.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    free = fwd.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    backend.answer = lambda d: 503 if b'"identity":"alice"' in d.body else 204
    stuck_ids = send(fwd, stuck, 2)
    free_ids = send(fwd, free, 3)
    backend.wait_accepted(3)
    assert_in_order(backend.deliveries, free_ids)
    assert {d.id for d in backend.deliveries if d.status == 503} == {stuck_ids[0]}
    backend.answer = lambda d: 204
    backend.wait_accepted(5)
    accepted = [d.id for d in backend.accepted()]
    assert [i for i in accepted if i in stuck_ids] == stuck_ids


def test_events_survive_a_restart(make_app, backend):
    backend.answer = lambda d: 503
    first = make_app()
    relay = Relay(first.test_client())
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    ids = send(relay, call, 3)
    backend.wait_for(lambda ds: len(ds) >= 2)
    first.extensions["callrelay.forwarding"].stop()  # the process goes away
    backend.answer = lambda d: 204
    make_app()  # a new process on the same SQLite file
    backend.wait_accepted(3)
    assert_in_order(backend.deliveries, ids)


def test_undeliverable_event_goes_to_the_dead_list_and_can_be_retried(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="3")
    relay = Relay(app.test_client())
    backend.answer = lambda d: 500 if b'"content":{"n":1}' in d.body else 204
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    ids = send(relay, call, 2)
    [second] = backend.wait_accepted(1)
    assert second.id == ids[1]  # the next event of the call went once the first was buried
    assert [d.status for d in backend.deliveries if d.id == ids[0]] == [500, 500, 500]
    assert relay.get("/events/dead", token="wrong-token-0123456789").status_code == 401
    dead = relay.get("/events/dead")
    assert dead.status_code == 200
    [entry] = dead.json["events"]
    assert (entry["id"], entry["call_sid"], entry["attempts"]) == (ids[0], call.parent_sid, 3)
    assert entry["last_error"] == "HTTP 500" and entry["event"]["data"]["content"] == {"n": 1}
    backend.answer = lambda d: 204
    assert relay.client.post(f"/events/dead/{ids[0]}/retry").status_code == 401
    retried = relay.client.post(f"/events/dead/{ids[0]}/retry",
                                headers={"Authorization": "Bearer relay-token-0123456789abcdef"})
    assert retried.status_code == 202 and retried.json == {"id": ids[0], "queued": True}
    backend.wait_accepted(2)
    assert [d.id for d in backend.accepted()] == [ids[1], ids[0]]
    assert relay.get("/events/dead").json == {"events": []}
    again = relay.client.post(f"/events/dead/{ids[0]}/retry",
                              headers={"Authorization": "Bearer relay-token-0123456789abcdef"})
    assert again.status_code == 404 and again.json["error"]["code"] == "event_not_found"


def test_leg_updates_are_forwarded_once_per_status_change(make_app, backend):
    app = make_app(FORWARD_EVENTS="messages,legs")
    relay = Relay(app.test_client())
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    [message_id] = send(relay, call, 1)
    relay.play(call.hangup)
    relay.play(call.answer[1:] + call.hangup)  # late and repeated callbacks add nothing
    backend.wait_accepted(6)
    events = [d.verified() for d in backend.accepted()]
    legs = [(e["data"]["leg"], e["data"]["status"]) for e in events
            if e["type"] == "call.leg.updated"]
    assert legs == [("parent", "ringing"), ("child", "ringing"), ("child", "in-progress"),
                    ("child", "completed"), ("parent", "completed")]
    assert events[3]["type"] == "call.message" and backend.accepted()[3].id == message_id
    child = events[2]["data"]
    assert child == {"call_sid": call.parent_sid, "leg_sid": call.child_sid, "leg": "child",
                     "identity": "bob", "status": "in-progress", "sdk": True,
                     "direction": "outbound-dial", "from": "+15005550006", "to": "client:bob"}
    assert len(outbox_rows(app)) == 6 and len(backend.deliveries) == 6
