"""Toll fraud: through signed Voice URL requests, an SDK caller reaches only what the policy allows."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.relay import Relay


def voice(relay: Relay, to: str, caller: str = "client:mallory"):
    params = {"CallSid": new_call_sid(), "AccountSid": ACCOUNT_SID, "From": caller, "To": to,
              "CallStatus": "ringing", "Direction": "inbound"}
    answer = relay.webhook("/twilio/voice", params)
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    return ET.fromstring(answer.data)


def refused_counts(client) -> dict[str, float]:
    """callrelay_dial_refused_total from /metrics, by reason."""
    text = client.get("/metrics").get_data(as_text=True)
    return {sample.labels["reason"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "callrelay_dial_refused_total"}


def refusals(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "dial refused"]


@pytest.mark.parametrize("to, reason", [
    ("+8821312345678", "invalid_number"),
    ("+8823421234", "prefix_not_allowed"),
    ("1 (900) 555-0100", "premium_rate"),
    ("+1 876 523 0123", "prefix_not_allowed"),  # Jamaica: +1, but not the caller ID's US
    ("+1 809 234 5678", "prefix_not_allowed"),  # the Dominican Republic
    ("+1 500 555 0006", "personal_number"),
    ("sip:premium@evil.example;transport=tls?X-Evil=1", "malformed"),
    ("sip:premium@evil.example", "sip_domain_not_allowed"),
    ("tel:+19005550100", "unknown_scheme"),
])
def test_refused_destinations_hang_up_and_are_logged_and_counted(relay, client, caplog, to,
                                                                 reason):
    caplog.set_level(logging.INFO)
    root = voice(relay, to)
    assert root.find("Dial") is None
    assert [child.tag for child in root] == ["Say", "Hangup"]
    (line,) = refusals(caplog)
    assert line.levelno == logging.WARNING and line.reason == reason
    assert line.call_sid.startswith("CA")
    digits = "".join(c for c in to if c.isdigit())
    assert len(digits) < 7 or digits[-7:] not in caplog.text  # masked, never whole
    assert refused_counts(client) == {reason: 1}


def test_allowed_destinations_are_dialled_normalised(relay, client, caplog):
    caplog.set_level(logging.INFO)
    number = voice(relay, "(415) 555-2671").find("Dial/Number")
    assert number is not None and number.text == "+14155552671"
    client_noun = voice(relay, "client:bob").find("Dial/Client")
    assert client_noun is not None and client_noun.text == "bob"
    assert not refusals(caplog)
    assert refused_counts(client) == {}


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


def test_widened_policy_reaches_other_countries_and_sip_domains_but_never_premium(relay_with):
    relay = relay_with(DIAL_ALLOW="*", DIAL_SIP_DOMAINS="pbx.example.com")
    assert voice(relay, "+33612345678").find("Dial/Number").text == "+33612345678"
    sip = voice(relay, "sip:bob@PBX.example.com;transport=tls").find("Dial/Sip")
    assert sip.text == "sip:bob@PBX.example.com;transport=tls"
    assert voice(relay, "+44 843 123 4567").find("Dial") is None
    assert voice(relay, "+33 884 01 23 45").find("Dial") is None  # shared cost
    assert voice(relay, "sip:bob@pbx.example.com.evil.example").find("Dial") is None


def test_nanp_wide_prefix_and_regions_as_asked(relay_with):
    nanp = relay_with(DIAL_ALLOW="+1")
    assert voice(nanp, "+18765230123").find("Dial/Number").text == "+18765230123"
    regions = relay_with(DIAL_ALLOW="US,JM")
    assert voice(regions, "+18765230123").find("Dial/Number").text == "+18765230123"
    assert voice(regions, "+18092345678").find("Dial") is None


def test_sip_parameters_outside_the_list_are_refused(relay_with, caplog):
    relay = relay_with(DIAL_SIP_DOMAINS="pbx.example.com")
    caplog.set_level(logging.INFO)
    sip = voice(relay, "sip:bob@pbx.example.com;transport=tls;user=phone").find("Dial/Sip")
    assert sip.text == "sip:bob@pbx.example.com;transport=tls;user=phone"
    root = voice(relay, "sip:bob@pbx.example.com;maddr=premium.evil.example")
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert [r.reason for r in refusals(caplog)] == ["sip_parameter_not_allowed"]
    assert "evil" not in caplog.text


def test_without_caller_id_or_allow_list_no_number_is_dialled(relay_with):
    relay = relay_with(TWILIO_CALLER_ID="")
    assert voice(relay, "+14155552671").find("Dial") is None
    assert voice(relay, "client:bob").find("Dial/Client").text == "bob"


def test_phone_calling_in_is_not_subject_to_the_policy(relay):
    root = voice(relay, "+15005550001", caller="+8823421234")
    assert root.find("Dial/Client").text == "bob"
