"""Replayed webhooks (issue #11, finding 2): an ended leg stays ended, even after retention."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from email.utils import formatdate

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from tests.support.relay import Relay

RETENTION_S = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with ended legs forgotten after a second."""
    return replace(settings, leg_retention_s=RETENTION_S)


def forget_ended_legs() -> None:
    time.sleep(RETENTION_S + 0.2)


def test_a_replayed_answer_after_retention_does_not_revive_the_leg(relay, twilio, settings):
    call = relay.answered(phone_calls_sdk(settings.twilio_account_sid))  # bob on the child
    relay.play(call.hangup)
    twilio.set_call(call.child_sid, "completed", parent_call_sid=call.parent_sid,
                    to="client:bob")  # as Twilio knows it
    forget_ended_legs()
    assert relay.get(f"/calls/{call.child_sid}").status_code == 404

    answered = call.answer[-1]  # the signed `in-progress` callback of bob's leg, again
    assert answered.params["CallStatus"] == "in-progress"
    assert relay.webhook(answered.path, answered.params).status_code == 204

    answer = relay.notify({"identity": "bob", "content": {"hello": 1}})
    assert answer.status_code == 404, answer.json  # was 502: Twilio refused the dead leg
    assert answer.json["error"]["code"] == "identity_not_found"
    assert relay.get(f"/calls/{call.child_sid}").status_code == 404
    assert relay.get("/calls").json["calls"] == []
    assert twilio.messages == []

    # Bob's next real call gets the message, and only it.
    again = relay.answered(phone_calls_sdk(settings.twilio_account_sid))
    answer = relay.notify({"identity": "bob", "content": {"hello": 2}})
    assert answer.status_code == 201, answer.json
    assert [m["call_sid"] for m in answer.json["messages"]] == [again.child_sid]
    assert "failed" not in answer.json
    assert [m.call_sid for m in twilio.messages] == [again.child_sid]


def test_a_replayed_voice_request_after_retention_does_not_revive_the_leg(relay, twilio,
                                                                         settings):
    # The Voice URL request carries no Timestamp: only the tombstone stands in its way.
    call = relay.answered(sdk_calls_phone(settings.twilio_account_sid))  # alice on the parent
    relay.play(call.hangup)
    twilio.set_call(call.parent_sid, "completed", from_="client:alice")
    forget_ended_legs()
    voice = call.answer[0]
    assert "Timestamp" not in voice.params
    assert relay.webhook(voice.path, voice.params).status_code == 200

    answer = relay.notify({"identity": "alice", "content": {}})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"
    assert relay.get(f"/calls/{call.parent_sid}").status_code == 404
    assert twilio.messages == []


def test_a_callback_stamped_long_ago_is_acknowledged_and_ignored(relay, twilio, settings,
                                                                 caplog):
    caplog.set_level(logging.WARNING, logger="callrelay.webhooks")
    call = phone_calls_sdk(settings.twilio_account_sid)
    relay.play(call.answer[:1])
    params = {**call.answer[-1].params,
              "Timestamp": formatdate(time.time() - 2 * 3600, usegmt=True)}
    answer = relay.webhook("/twilio/status", params)
    assert answer.status_code == 204 and answer.data == b""  # so Twilio does not retry it
    legs = relay.get(f"/calls/{call.parent_sid}").json["legs"]
    assert [leg["call_sid"] for leg in legs] == [call.parent_sid]  # the child: not recorded
    assert relay.notify({"identity": "bob", "content": {}}).status_code == 404
    (line,) = [r for r in caplog.records if "stale callback" in r.getMessage()]
    assert line.levelno == logging.WARNING and line.call_sid == call.child_sid
    assert 7100 <= line.age_s <= 7300


def test_a_malformed_timestamp_is_no_error(relay, settings):
    leg = new_call_sid()
    params = {"AccountSid": settings.twilio_account_sid, "CallSid": leg,
              "CallStatus": "ringing", "From": "+15005550006", "To": "client:bob",
              "Direction": "inbound", "Timestamp": "the day before yesterday"}
    assert relay.webhook("/twilio/status", params).status_code == 204
    call = relay.get(f"/calls/{leg}")
    assert call.status_code == 200 and call.json["live"] is True


def test_a_replayed_voice_request_does_not_revive_a_leg_whose_end_was_lost(settings, twilio):
    """Issue #17, item 10: a leg that never ended is buried when MAX_CALL_DURATION_S passes
    without news, so the Voice URL request, which carries no Timestamp, cannot revive it."""
    app = create_app(replace(settings, max_call_duration_s=RETENTION_S))
    try:
        relay = Relay(app.test_client())
        call = relay.answered(sdk_calls_phone(settings.twilio_account_sid))  # alice, no hangup
        assert relay.get(f"/calls/{call.parent_sid}").json["live"] is True
        forget_ended_legs()  # no news for longer than the longest call: the `completed` was lost
        assert relay.get(f"/calls/{call.parent_sid}").status_code == 404

        voice = call.answer[0]
        assert relay.webhook(voice.path, voice.params).status_code == 200
        assert relay.get(f"/calls/{call.parent_sid}").status_code == 404  # was live: true
        answer = relay.notify({"identity": "alice", "content": {}})
        assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"
        assert twilio.messages == []
    finally:
        app.extensions["callrelay.store"].close()
