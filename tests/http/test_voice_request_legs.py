"""A Voice URL request is a parent leg (issue #17, item 8): the SDK's connect parameters, which
arrive in the same signed form as Twilio's fields, cannot shape the registry."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from werkzeug.datastructures import MultiDict

from sandbox.calls import new_call_sid, sdk_calls_phone
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, sign
from tests.support.relay import Relay


def voice(relay: Relay, fields: list[tuple[str, str]]) -> None:
    """A signed Voice URL request whose form holds `fields`, repeated names included."""
    form = MultiDict(fields)
    answer = relay.client.post("/twilio/voice", data=form, headers={
        "X-Twilio-Signature": sign(PUBLIC_BASE + "/twilio/voice", form)})
    assert answer.status_code == 200, answer.data


def twilios(call_sid: str, caller: str, to: str) -> list[tuple[str, str]]:
    """The fields Twilio sends with a Voice SDK device's Voice URL request."""
    return [("AccountSid", ACCOUNT_SID), ("ApiVersion", "2010-04-01"), ("CallSid", call_sid),
            ("CallStatus", "ringing"), ("Direction", "inbound"), ("From", caller), ("To", to),
            ("Caller", caller)]


def leg(relay: Relay, call_sid: str) -> dict:
    answer = relay.get(f"/calls/{call_sid}")
    assert answer.status_code == 200, answer.json
    (found,) = [leg for leg in answer.json["legs"] if leg["call_sid"] == call_sid]
    return found


@pytest.mark.parametrize("order", ["twilio first", "sdk first"])
def test_a_duplicated_direction_does_not_make_the_leg_the_callees(relay, twilio, order):
    mallory = new_call_sid()
    fields = twilios(mallory, "client:mallory", "client:vic")
    injected = [("Direction", "outbound-dial")]
    voice(relay, fields + injected if order == "twilio first" else injected + fields)
    found = leg(relay, mallory)
    assert (found["identity"], found["leg"], found["live"]) == ("mallory", "parent", True)
    # vic has no call: a message for vic reaches nobody, least of all mallory.
    answer = relay.notify({"identity": "vic", "content": {"secret": 1}})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"
    assert twilio.messages == []


def test_a_parent_call_sid_does_not_make_the_caller_a_child_of_anothers_call(relay, twilio):
    victim = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice",
                                            number="+14155552671"))
    mallory = new_call_sid()
    voice(relay, [*twilios(mallory, "client:mallory", "+14155552671"),
                  ("ParentCallSid", victim.parent_sid)])
    assert leg(relay, mallory)["parent_call_sid"] is None
    legs = relay.get(f"/calls/{victim.parent_sid}").json["legs"]
    assert [leg["call_sid"] for leg in legs] == [victim.parent_sid, victim.child_sid]
    answer = relay.notify({"call_sid": victim.parent_sid, "leg": "child", "content": {}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [victim.child_sid]


def test_a_stale_timestamp_or_a_sequence_number_from_the_sdk_changes_nothing(relay):
    mallory = new_call_sid()
    voice(relay, [*twilios(mallory, "client:mallory", "client:bob"),
                  ("Timestamp", formatdate(0, usegmt=True)), ("SequenceNumber", "99")])
    assert leg(relay, mallory)["identity"] == "mallory"  # recorded, not refused as a replay
