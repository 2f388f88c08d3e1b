"""The pure conference rules: names, callback parsing, folding, and the TwiML that dials in."""

import xml.etree.ElementTree as ET

import pytest

from services.errors import ValidationFailed
from services.legs.conferences import (
    ConferenceEvent,
    conference_ref,
    fold,
    is_conference_name,
)
from services.twilio.conference_access import ConferenceAccess
from services.twilio.twiml import CONFERENCE_EVENTS, DialPlan, voice_response

CONF = "CF" + "a" * 32
ALICE, BOB = "CA" + "1" * 32, "CA" + "2" * 32


@pytest.mark.parametrize("name", ["standup", "a", "Team Standup", "room-42_b.c", "x@y+z",
                                  "x" * 128, "CFnot-a-sid"])
def test_sane_names(name):
    assert is_conference_name(name) and conference_ref(name) == name


@pytest.mark.parametrize("name", ["", " ", " a", "a ", "a/b", "a\nb", "<b>", "x" * 129,
                                  "CF" + "0" * 32, "é", None, 7])
def test_insane_names(name):
    assert not is_conference_name(name)


def test_a_reference_is_a_sid_or_a_name():
    assert conference_ref(CONF) == CONF
    with pytest.raises(ValidationFailed) as caught:
        conference_ref("a/b", field="conference")
    assert caught.value.details == {"field": "conference"}


def test_callback_parameters():
    event = ConferenceEvent.from_params({
        "ConferenceSid": CONF, "StatusCallbackEvent": "participant-join", "CallSid": ALICE,
        "FriendlyName": "standup", "SequenceNumber": "3", "AccountSid": "AC" + "5" * 32,
        "Timestamp": "Fri, 15 Jan 2027 08:00:00 +0000", "Muted": "false"})
    assert (event.conference_sid, event.kind, event.call_sid) == (CONF, "participant-join", ALICE)
    assert (event.sequence, event.timestamp, event.friendly_name) == (3, 1_800_000_000, "standup")
    odd = ConferenceEvent.from_params({"ConferenceSid": CONF, "StatusCallbackEvent":
                                       "conference-end", "Timestamp": "yesterday",
                                       "SequenceNumber": "x"})
    assert (odd.timestamp, odd.sequence, odd.call_sid) == (None, None, None)


@pytest.mark.parametrize("params", [
    {"StatusCallbackEvent": "conference-start"},
    {"ConferenceSid": "CF12", "StatusCallbackEvent": "conference-start"},
    {"ConferenceSid": CONF},
    {"ConferenceSid": CONF, "StatusCallbackEvent": "Participant Join!"},
    {"ConferenceSid": CONF, "StatusCallbackEvent": "participant-join"},
    {"ConferenceSid": CONF, "StatusCallbackEvent": "participant-mute", "CallSid": "CA1"},
    {"ConferenceSid": CONF, "StatusCallbackEvent": "conference-start",
     "FriendlyName": "x" * 257},
])
def test_callbacks_that_describe_nothing_are_refused(params):
    with pytest.raises(ValidationFailed):
        ConferenceEvent.from_params(params)


def ev(kind, seq=None, call=None, ts=None):
    return ConferenceEvent(CONF, kind, "standup", call, None, seq, ts)


def test_a_join_and_a_leave_that_cannot_be_ordered_count_as_left():
    conference = fold(fold(None, ev("participant-join", call=ALICE), 5.0),
                      ev("participant-leave", call=ALICE), 5.0)
    assert conference.present() == []


def test_sequence_numbers_win_over_timestamps():
    conference = fold(None, ev("participant-join", 2, ALICE, ts=100.0), 0.0)
    conference = fold(conference, ev("participant-leave", 1, ALICE, ts=200.0), 0.0)
    assert [p.call_sid for p in conference.present()] == [ALICE]


def test_an_event_that_adds_nothing_returns_the_conference_itself():
    conference = fold(None, ev("participant-join", 1, ALICE), 1.0)
    assert fold(conference, ev("participant-join", 1, ALICE), 9.0) is conference
    assert fold(conference, ev("participant-mute", 2, ALICE), 9.0) is conference
    assert fold(conference, ev("participant-join", 3, BOB), 9.0).updated_at == 9.0


PLAN = DialPlan(status_callback_url="https://relay.example.com/twilio/status",
                conference_callback_url="https://relay.example.com/twilio/conference",
                conferences=ConferenceAccess(open=True))


def test_twiml_dials_the_conference_with_its_callbacks():
    root = ET.fromstring(voice_response({"From": "client:alice", "To": "conference:Team A"},
                                        PLAN))
    (noun,) = root.find("Dial")
    assert (noun.tag, noun.text) == ("Conference", "Team A")
    assert noun.get("statusCallback").split("#")[0] == PLAN.conference_callback_url
    assert noun.get("statusCallbackEvent") == CONFERENCE_EVENTS == "start end join leave"
    assert noun.get("statusCallbackMethod") == "POST"


def test_twiml_refuses_a_bad_name_and_dials_nothing():
    root = ET.fromstring(voice_response({"From": "client:alice", "To": "conference:a/b"}, PLAN))
    assert root.find("Dial") is None and "not valid" in root.find("Say").text


def test_a_phone_cannot_name_a_conference():
    root = ET.fromstring(voice_response({"From": "+15005550006", "To": "conference:standup"},
                                        DialPlan("https://x/twilio/status",
                                                 inbound_client_identity="bob")))
    assert root.find("Dial")[0].tag == "Client"
