"""The simulator reads callrelay's own TwiML as Twilio would: who is dialled, where the child's
callbacks go, or that nothing is."""

from dataclasses import replace

import pytest

from sandbox.calls import dialled_call, phone_calls_sdk, sdk_calls_phone
from sandbox.twiml import Dialled, NotDialled, read_twiml
from services.twilio.conference_access import ConferenceAccess
from services.twilio.dial_policy import DialPolicy
from services.twilio.twiml import DialPlan, voice_response
from tests.support.env import ACCOUNT_SID

PLAN = DialPlan(status_callback_url="https://relay.example.com/twilio/status",
                caller_id="+15005550006", inbound_client_identity="bob",
                policy=DialPolicy(allow=("+1",), sip_domains=frozenset({"pbx.example.com"}),
                                  region="US"),
                conference_callback_url="https://relay.example.com/twilio/conference")
EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


def twiml(from_: str, to: str, plan: DialPlan = PLAN) -> Dialled | NotDialled:
    return read_twiml(voice_response({"CallSid": "CA" + "1" * 32, "From": from_, "To": to},
                                     plan))


@pytest.mark.parametrize("from_, to, noun, target, child_to", [
    ("client:alice", "+1 (415) 555-2671", "Number", "+14155552671", "+14155552671"),
    ("client:alice", "client:carol", "Client", "carol", "client:carol"),
    ("client:alice", "carol", "Client", "carol", "client:carol"),
    ("client:alice", "sip:desk@pbx.example.com", "Sip", "sip:desk@pbx.example.com",
     "sip:desk@pbx.example.com"),
    ("+15005550001", "+15005550002", "Client", "bob", "client:bob"),  # INBOUND_CLIENT_IDENTITY
])
def test_what_callrelay_dials_is_read_with_its_callbacks(from_, to, noun, target, child_to):
    said = twiml(from_, to)
    assert isinstance(said, Dialled)
    assert (said.noun, said.target, said.to) == (noun, target, child_to)
    assert said.callback_base == "https://relay.example.com"
    assert said.callback_path == "/twilio/status"  # the fragment is not part of it
    assert said.events == EVENTS


def test_a_number_is_dialled_with_the_caller_id():
    said = twiml("client:alice", "+14155552671")
    assert isinstance(said, Dialled) and said.caller_id == "+15005550006"


def test_a_conference_is_read_as_a_conference():
    said = twiml("client:alice", "conference:standup",
                 replace(PLAN, conferences=ConferenceAccess(open=True)))
    assert isinstance(said, Dialled)
    assert (said.noun, said.target, said.callback_path) == ("Conference", "standup",
                                                            "/twilio/conference")


@pytest.mark.parametrize("from_, to, plan, hangs_up", [
    ("client:alice", "+442079460000", PLAN, True),  # not in DIAL_ALLOW
    ("client:alice", "+14155552671", DialPlan("https://relay.example.com/twilio/status"),
     True),  # no TWILIO_CALLER_ID: no prefix is allowed
    ("client:alice", "", PLAN, False),  # no To
    ("+15005550001", "+15005550002", DialPlan("https://relay.example.com/twilio/status"),
     False),  # no INBOUND_CLIENT_IDENTITY
])
def test_twiml_that_dials_nothing_is_read_as_such(from_, to, plan, hangs_up):
    said = twiml(from_, to, plan)
    assert isinstance(said, NotDialled)
    assert said.said.endswith("Goodbye.") and said.hangs_up is hangs_up


def test_what_is_not_twiml_is_refused():
    with pytest.raises(ValueError, match="not XML"):
        read_twiml("<html><body>oops")
    with pytest.raises(ValueError, match="root is <html>"):
        read_twiml("<html></html>")


def test_the_child_leg_follows_the_dialled_destination_and_events():
    scripted = sdk_calls_phone(ACCOUNT_SID)
    voice = scripted.answer[0]
    played = dialled_call(ACCOUNT_SID, voice, "client:carol", callback_path="/hooks/status",
                          events=frozenset({"answered", "completed"}))
    assert played.kind == "sdk-to-sdk" and played.parent_sid == scripted.parent_sid
    children = [s for s in played.steps if s.params.get("ParentCallSid")]
    assert [(s.path, s.params["To"], s.params["CallStatus"]) for s in children] == [
        ("/hooks/status", "client:carol", "in-progress"),
        ("/hooks/status", "client:carol", "completed")]
    # The parent's end goes to the TwiML App's Status Callback URL, whatever the TwiML says.
    assert played.hangup[-1].path == "/twilio/status"
    assert played.hangup[-1].params["CallSid"] == scripted.parent_sid


def test_a_phone_calling_in_rings_the_client_the_twiml_names():
    voice = phone_calls_sdk(ACCOUNT_SID, identity="bob").answer[0]
    played = dialled_call(ACCOUNT_SID, voice, "client:carol")
    assert (played.kind, played.identity, played.sdk_sid) == ("phone-to-sdk", "carol",
                                                              played.child_sid)
