"""Conference joins need authorization (issue #17, item 1), through signed Voice URL requests."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid
from sandbox.tickets import conference_ticket
from tests.http.test_toll_fraud import refusals, refused_counts
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.relay import Relay

SECRET = "conference-ticket-secret-for-the-tests-0123"


def dial_in(relay: Relay, identity: str, name: str, ticket: str | None = None) -> ET.Element:
    params = {"AccountSid": ACCOUNT_SID, "CallSid": new_call_sid(), "CallStatus": "ringing",
              "Direction": "inbound", "From": f"client:{identity}", "To": f"conference:{name}"}
    if ticket is not None:
        params["ConferenceTicket"] = ticket
    answer = relay.webhook("/twilio/voice", params)
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    return ET.fromstring(answer.data)


def joined(root: ET.Element) -> str | None:
    """The conference the TwiML dials into, if any."""
    noun = root.find("Dial/Conference")
    return noun.text if noun is not None else None


def hung_up(root: ET.Element) -> bool:
    return [child.tag for child in root] == ["Say", "Hangup"]


@pytest.fixture
def relay_with(tmp_path, twilio):
    apps = []

    def build(**env: str) -> Relay:
        app = create_app(Settings.from_env(make_env(tmp_path, twilio, **env)))
        apps.append(app)
        return Relay(app.test_client())

    yield build
    for app in apps:
        app.extensions["callrelay.store"].close()


def test_by_default_nobody_joins_a_conference(relay, client, caplog):
    caplog.set_level(logging.INFO)
    root = dial_in(relay, "mallory", "support-4711")
    assert joined(root) is None and hung_up(root)
    (line,) = refusals(caplog)
    assert line.levelno == logging.WARNING and line.reason == "conference_not_allowed"
    assert "support-4711" not in caplog.text
    assert refused_counts(client) == {"conference_not_allowed": 1}


def test_with_tickets_only_the_holder_joins_the_conference_it_names(relay_with, caplog):
    relay = relay_with(CONFERENCE_TICKET_SECRET=SECRET)
    alices = conference_ticket(SECRET, "alice", "support-4711")
    assert joined(dial_in(relay, "alice", "support-4711", alices)) == "support-4711"
    caplog.set_level(logging.INFO)
    assert hung_up(dial_in(relay, "mallory", "support-4711", alices))  # someone else's
    assert hung_up(dial_in(relay, "alice", "support-4712", alices))  # another conference
    assert hung_up(dial_in(relay, "mallory", "support-4711"))  # none
    assert hung_up(dial_in(relay, "mallory", "support-4711",  # minted with another secret
                           conference_ticket("m" * 40, "mallory", "support-4711")))
    expired = conference_ticket(SECRET, "alice", "support-4711", ttl_s=-1)
    assert hung_up(dial_in(relay, "alice", "support-4711", expired))
    assert [r.reason for r in refusals(caplog)] == [
        "conference_ticket_invalid", "conference_ticket_invalid", "conference_ticket_missing",
        "conference_ticket_invalid", "conference_ticket_expired"]
    assert refused_counts(relay.client) == {"conference_ticket_invalid": 3,
                                            "conference_ticket_missing": 1,
                                            "conference_ticket_expired": 1}


def test_open_conferences_let_anyone_in_and_say_so_at_start_up(relay_with, caplog):
    caplog.set_level(logging.INFO)
    relay = relay_with(DIAL_CONFERENCES="open")
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith("DIAL_CONFERENCES=open: anyone with a Voice SDK "
                                           "access token can join any conference")
    assert joined(dial_in(relay, "mallory", "support-4711")) == "support-4711"
    assert not refusals(caplog)
