"""Who may join which conference (issue #17, item 1): closed by default, tickets, or open."""

import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from sandbox.tickets import conference_ticket
from services.twilio.conference_access import ConferenceAccess
from services.twilio.twiml import REFUSED_SAY, DialPlan, voice_response
from tests.support.clock import FakeClock

SECRET = "correct-horse-battery-staple-0123456789"
NOON = 1_800_000_000.0
# printf 'alice\nstandup\n1800000000' | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
# (then + and / as - and _, no padding); Node's digest("base64url") gives the same.
KNOWN = "1800000000.5cxosA78ahxePx9bDEwF3iqF0i4NWOBPnfQtCCgKQg0"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON - 60)


@pytest.fixture
def tickets(clock: FakeClock) -> ConferenceAccess:
    return ConferenceAccess(SECRET, clock=clock)


def test_a_ticket_in_the_documented_format_lets_its_holder_in(tickets):
    assert tickets.refusal("alice", "standup", KNOWN) is None


def test_the_sandbox_mints_what_the_docs_describe(tickets, clock):
    assert conference_ticket(SECRET, "alice", "standup", ttl_s=60, now=clock()) == KNOWN


@pytest.mark.parametrize("identity, name, ticket, reason", [
    ("bob", "standup", KNOWN, "conference_ticket_invalid"),  # alice's ticket
    ("alice", "board", KNOWN, "conference_ticket_invalid"),  # another conference
    ("alice", "Standup", KNOWN, "conference_ticket_invalid"),
    ("alice", "standup", "1800000001" + KNOWN[10:], "conference_ticket_invalid"),  # later
    ("alice", "standup", KNOWN[:-1] + "1", "conference_ticket_invalid"),
    ("alice", "standup", KNOWN + "=", "conference_ticket_invalid"),  # padded
    ("alice", "standup", KNOWN[:-1] + "/", "conference_ticket_invalid"),  # not url-safe
    ("alice", "standup", KNOWN.split(".")[1], "conference_ticket_invalid"),  # no expiry
    ("alice", "standup", " " + KNOWN, "conference_ticket_invalid"),
    ("alice", "standup", "", "conference_ticket_missing"),
    ("alice", "standup", None, "conference_ticket_missing"),
])
def test_a_ticket_for_someone_or_something_else_is_refused(tickets, identity, name, ticket,
                                                            reason):
    assert tickets.refusal(identity, name, ticket) == reason


def test_a_ticket_is_refused_once_expired(tickets, clock):
    clock.now = NOON - 1
    assert tickets.refusal("alice", "standup", KNOWN) is None
    clock.now = NOON
    assert tickets.refusal("alice", "standup", KNOWN) == "conference_ticket_expired"


def test_another_secret_mints_nothing_that_passes(tickets, clock):
    forged = conference_ticket("x" * 40, "alice", "standup", now=clock())
    assert tickets.refusal("alice", "standup", forged) == "conference_ticket_invalid"


def test_closed_by_default_and_open_when_asked():
    assert ConferenceAccess().refusal("alice", "standup", KNOWN) == "conference_not_allowed"
    assert ConferenceAccess(open=True).refusal("alice", "standup", None) is None


class Counted:
    def __init__(self):
        self.reasons = []

    def dial_refused(self, reason):
        self.reasons.append(reason)


def test_the_twiml_refuses_a_conference_without_a_valid_ticket(tickets, clock):
    counted = Counted()
    plan = DialPlan(status_callback_url="https://relay.example.com/twilio/status",
                    conference_callback_url="https://relay.example.com/twilio/conference",
                    observer=counted)
    joins = {"From": "client:alice", "To": "conference:standup", "ConferenceTicket": KNOWN}
    for access in (ConferenceAccess(), ConferenceAccess("y" * 32, clock=clock)):
        root = ET.fromstring(voice_response(joins, replace(plan, conferences=access)))
        assert [child.tag for child in root] == ["Say", "Hangup"]
        assert root.find("Say").text == REFUSED_SAY
    root = ET.fromstring(voice_response(joins, replace(plan, conferences=tickets)))
    assert root.find("Dial/Conference").text == "standup"
    assert counted.reasons == ["conference_not_allowed", "conference_ticket_invalid"]
