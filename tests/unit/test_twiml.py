"""The TwiML answer to the Voice URL request."""

import xml.etree.ElementTree as ET

from services.twilio.dial_policy import DialPolicy
from services.twilio.twiml import STATUS_EVENTS, DialPlan, voice_response

POLICY = DialPolicy.for_caller_id("+15005550001", allow=("+1",),
                                  sip_domains=frozenset({"example.sip.twilio.com"}))
PLAN = DialPlan(status_callback_url="https://relay.example.com/twilio/status",
                caller_id="+15005550001", inbound_client_identity="frontdesk", policy=POLICY)


def dial(params, plan=PLAN):
    root = ET.fromstring(voice_response(params, plan))
    dial = root.find("Dial")
    assert dial is not None, ET.tostring(root)
    (noun,) = list(dial)
    return dial, noun


def assert_tracked(noun):
    assert noun.get("statusCallback").split("#")[0] == PLAN.status_callback_url
    assert noun.get("statusCallbackEvent") == STATUS_EVENTS == "initiated ringing answered completed"


def test_sdk_calling_a_phone_number():
    d, noun = dial({"From": "client:alice", "To": "+1 (415) 555-2671"})
    assert noun.tag == "Number" and noun.text == "+14155552671"
    assert d.get("callerId") == "+15005550001"
    assert_tracked(noun)


def test_sdk_calling_digits_without_plus():
    _, noun = dial({"From": "client:alice", "To": "14155552671"})
    assert noun.tag == "Number" and noun.text == "+14155552671"  # E.164, as Twilio wants


def test_sdk_calling_another_client():
    for to in ("client:bob", "bob"):
        _, noun = dial({"From": "client:alice", "To": to})
        assert noun.tag == "Client" and noun.text == "bob"
        assert_tracked(noun)


def test_sdk_calling_sip():
    _, noun = dial({"From": "client:alice", "To": "sip:bob@example.sip.twilio.com"})
    assert noun.tag == "Sip" and noun.text == "sip:bob@example.sip.twilio.com"
    assert_tracked(noun)


def test_phone_calling_in_rings_the_inbound_client():
    _, noun = dial({"From": "+15559998888", "To": "+15550001111"})
    assert noun.tag == "Client" and noun.text == "frontdesk"
    assert_tracked(noun)


def test_status_callback_asks_twilio_to_retry():
    _, noun = dial({"From": "+15559998888", "To": "+15550001111"})
    fragment = noun.get("statusCallback").split("#", 1)[1]
    assert "rp=ct,rt,5xx" in fragment and "rc=3" in fragment


def test_no_destination_says_so():
    root = ET.fromstring(voice_response({"From": "client:alice"}, PLAN))
    assert root.find("Dial") is None and root.find("Say") is not None
    unconfigured = DialPlan(status_callback_url=PLAN.status_callback_url)
    root = ET.fromstring(voice_response({"From": "+15559998888"}, unconfigured))
    assert root.find("Dial") is None and root.find("Say") is not None


class Counted:
    def __init__(self):
        self.reasons = []

    def dial_refused(self, reason):
        self.reasons.append(reason)


def test_refused_destination_says_so_hangs_up_and_is_counted():
    counted = Counted()
    plan = DialPlan(status_callback_url=PLAN.status_callback_url, caller_id="+15005550001",
                    policy=POLICY, observer=counted)
    for to in ("+8821312345678", "1 (900) 555-0100", "sip:x@evil.example"):
        root = ET.fromstring(voice_response({"From": "client:mallory", "To": to}, plan))
        assert [child.tag for child in root] == ["Say", "Hangup"]
    assert counted.reasons == ["invalid_number", "premium_rate", "sip_domain_not_allowed"]


def test_without_a_policy_no_number_is_dialled():
    plan = DialPlan(status_callback_url=PLAN.status_callback_url, caller_id="+15005550001")
    root = ET.fromstring(voice_response({"From": "client:alice", "To": "+14155552671"}, plan))
    assert root.find("Dial") is None and root.find("Hangup") is not None
