"""POST /twilio/messages: signed JSON and form callbacks are queued and forwarded once."""

import hashlib
import json
import logging
import time
from email.utils import formatdate

import pytest

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from services.forwarding.events import STALE_MESSAGE_S
from services.store.outbox import SEEN_S
from tests.forwarding.support import (
    new_message_sid,
    outbox_rows,
    post_form,
    post_json,
    sdk_message,
)
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, sign


def test_json_callback_is_forwarded_as_a_signed_event(fwd, backend):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    fields = sdk_message(call.sdk_sid, {"type": "hello", "n": 1}, seq=1)
    answer = post_json(fwd.client, fields)
    assert answer.status_code == 204 and answer.data == b""
    [delivery] = backend.wait_accepted(1)
    event = delivery.verified()
    assert delivery.id == f"msg_{fields['Sid']}"
    assert event["type"] == "call.message" and event["timestamp"].endswith("Z")
    assert event["data"] == {
        "call_sid": call.parent_sid, "leg_sid": call.sdk_sid, "leg": "parent",
        "identity": "alice", "message_sid": fields["Sid"], "sequence_number": 1,
        "content": {"type": "hello", "n": 1}}
    assert delivery.headers["content-type"] == "application/json"


def test_form_callback_on_a_child_sdk_leg(fwd, backend):
    call = fwd.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    fields = sdk_message(call.sdk_sid, {"answer": 42}, seq=3)
    assert post_form(fwd.client, fields).status_code == 204
    data = backend.wait_accepted(1)[0].verified()["data"]
    assert (data["call_sid"], data["leg_sid"], data["leg"]) == (
        call.parent_sid, call.child_sid, "child")
    assert data["identity"] == "bob" and data["content"] == {"answer": 42}
    assert data["sequence_number"] == 3


@pytest.mark.parametrize("raw, decoded", [
    (json.dumps({"a": [1, 2]}), {"a": [1, 2]}),
    (json.dumps("text"), "text"),
    ("not json at all", "not json at all"),
    (json.dumps(None), None),
])
def test_content_is_decoded_when_it_holds_json(fwd, backend, raw, decoded):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    fields = {**sdk_message(call.sdk_sid, None), "Content": raw}
    assert post_json(fwd.client, fields).status_code == 204
    assert backend.wait_accepted(1)[0].verified()["data"]["content"] == decoded


def test_message_from_an_unknown_leg_is_still_forwarded(fwd, backend):
    sid = sdk_calls_phone(ACCOUNT_SID).parent_sid  # never announced by a webhook
    assert post_json(fwd.client, sdk_message(sid, {"x": 1})).status_code == 204
    data = backend.wait_accepted(1)[0].verified()["data"]
    assert (data["call_sid"], data["leg_sid"], data["leg"], data["identity"]) == (
        sid, sid, None, None)


def test_same_message_twice_is_forwarded_once(fwd, fwd_app, backend):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    first = sdk_message(call.sdk_sid, {"n": 1}, seq=1)
    second = sdk_message(call.sdk_sid, {"n": 2}, seq=2)
    assert post_json(fwd.client, first).status_code == 204
    assert post_form(fwd.client, first).status_code == 204  # Twilio retried, as a form
    assert post_json(fwd.client, second).status_code == 204
    backend.wait_accepted(2)
    assert post_json(fwd.client, first).status_code == 204  # and once more, after delivery
    assert post_json(fwd.client, second).status_code == 204
    assert [row[0] for row in outbox_rows(fwd_app)] == [f"msg_{first['Sid']}",
                                                        f"msg_{second['Sid']}"]
    assert [d.id for d in backend.deliveries] == [f"msg_{first['Sid']}", f"msg_{second['Sid']}"]


@pytest.mark.parametrize("forge", ["missing", "wrong token", "tampered body", "other url",
                                   "json without hash", "form tampered"])
def test_forged_callbacks_are_refused_and_nothing_is_queued(fwd, fwd_app, backend, forge):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    fields = sdk_message(call.sdk_sid, {"evil": True})
    raw = json.dumps(fields).encode()
    if forge == "missing":
        answer = post_json(fwd.client, fields, signature="")
    elif forge == "wrong token":
        url = f"{PUBLIC_BASE}/twilio/messages?bodySHA256={hashlib.sha256(raw).hexdigest()}"
        answer = post_json(fwd.client, fields, signature=sign(url, {}, token="not-the-token"))
    elif forge == "tampered body":
        # Signed for one body (its hash in the URL), sent with another.
        url = f"/twilio/messages?bodySHA256={hashlib.sha256(raw).hexdigest()}"
        answer = fwd.client.post(url, data=raw.replace(b"evil", b"good"),
                                 content_type="application/json",
                                 headers={"X-Twilio-Signature": sign(PUBLIC_BASE + url, {})})
    elif forge == "other url":
        answer = post_json(fwd.client, fields, signature=sign(
            "https://evil.example.com/twilio/messages", {}))
    elif forge == "json without hash":
        # A signature over the bare URL would otherwise cover any JSON body at all.
        answer = fwd.client.post("/twilio/messages", data=raw, content_type="application/json",
                                 headers={"X-Twilio-Signature": sign(
                                     PUBLIC_BASE + "/twilio/messages", {})})
    else:
        form = {k: str(v) for k, v in fields.items()}
        answer = post_form(fwd.client, {**form, "Content": "{}"},
                           signature=sign(PUBLIC_BASE + "/twilio/messages", form))
    assert answer.status_code == 403, answer.data
    assert answer.json["error"]["code"] == "invalid_signature"
    assert outbox_rows(fwd_app) == []
    assert backend.deliveries == []


@pytest.mark.parametrize("change", [
    {"Sid": "KX123"}, {"CallSid": "CA1"}, {"Sid": None}, {"SequenceNumber": "first"},
    # Only ASCII digits (or a JSON integer) are a sequence number: int() takes all of these.
    {"SequenceNumber": "\u0663"}, {"SequenceNumber": "-1"}, {"SequenceNumber": " 7"},
    {"SequenceNumber": "1_0"}, {"SequenceNumber": -1}, {"SequenceNumber": True},
    {"SequenceNumber": 1.5}, {"SequenceNumber": "\u00b2"}, {"SequenceNumber": 10 ** 30},
])
def test_malformed_callbacks_are_refused(fwd, change):
    fields = {k: v for k, v in {**sdk_message("CA" + "1" * 32, {}), **change}.items()
              if v is not None}
    answer = post_json(fwd.client, fields)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "validation_failed"


def test_without_forward_url_messages_are_acknowledged_and_dropped(relay):
    fields = sdk_message("CA" + "2" * 32, {"x": 1}, sid=new_message_sid())
    assert post_json(relay.client, fields).status_code == 204
    assert post_json(relay.client, fields, signature="bad").status_code == 403
    dead = relay.get("/events/dead")
    assert dead.status_code == 404 and dead.json["error"]["code"] == "forwarding_disabled"


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "0", "1001", "", "-1", "1_0",
                                   "9" * 5000])
def test_dead_events_limit_must_be_ascii_digits_in_range(fwd, limit):
    answer = fwd.get(f"/events/dead?limit={limit}")
    assert answer.status_code == 422, answer.data
    assert answer.json["error"]["code"] == "validation_failed"


@pytest.mark.parametrize("post", [post_json, post_form])
def test_a_message_replayed_after_the_dedup_window_is_not_queued_again(fwd, fwd_app, backend,
                                                                       post, caplog):
    """Issue #17, item 10: the outbox remembers a message id for a day; Twilio's Timestamp
    says what is older than that, which would otherwise reach the backend again under a fresh
    webhook-timestamp."""
    caplog.set_level(logging.WARNING, logger="callrelay.webhooks")
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    yesterdays = sdk_message(call.sdk_sid, {"n": 1}, sent_at=time.time() - 25 * 3600)
    if post is post_form:  # the form's Timestamp in RFC 2822, as Twilio's status callbacks
        yesterdays["Timestamp"] = formatdate(time.time() - 25 * 3600, usegmt=True)
    assert post(fwd.client, yesterdays).status_code == 204  # acknowledged: no retry
    todays = sdk_message(call.sdk_sid, {"n": 2})
    assert post(fwd.client, todays).status_code == 204
    [delivery] = backend.wait_accepted(1)
    assert delivery.id == f"msg_{todays['Sid']}"
    assert [row[0] for row in outbox_rows(fwd_app)] == [f"msg_{todays['Sid']}"]
    (line,) = [r for r in caplog.records if "stale sdk message" in r.getMessage()]
    assert line.message_sid == yesterdays["Sid"] and line.age_s >= 25 * 3600
    # Recorded nowhere: the call's history holds today's message only.
    history = fwd.get(f"/calls/{call.sdk_sid}/messages").json["messages"]
    assert [m["sid"] for m in history] == [todays["Sid"]]


def test_the_stale_window_is_well_inside_the_dedup_window():
    # Younger than STALE_MESSAGE_S and seen before: the outbox still knows it (skew to spare).
    assert STALE_MESSAGE_S <= SEEN_S / 2
