"""Conferences at the HTTP boundary: TwiML, signed conference callbacks, /notify, GET."""

import xml.etree.ElementTree as ET
from dataclasses import replace
from email.utils import formatdate

import pytest

from config.settings import Settings
from sandbox.calls import new_call_sid
from sandbox.conference import conference_call, new_conference_sid
from sandbox.tickets import conference_ticket
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, sign

CONF_PATH = "/twilio/conference"
TICKET_SECRET = "conference-ticket-secret-for-the-tests-0123"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings, with conference joins by ticket (they are closed by default)."""
    return replace(settings, conference_ticket_secret=TICKET_SECRET)


def voice(sid, identity, name="standup"):
    """A Voice URL request of `identity` dialling into `name`, with the ticket its backend minted."""
    return {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": "ringing",
            "Direction": "inbound", "From": f"client:{identity}", "To": f"conference:{name}",
            "ConferenceTicket": conference_ticket(TICKET_SECRET, identity, name)}


def event(conf, kind, seq=None, call_sid=None, name="standup", ts=None):
    params = {"AccountSid": ACCOUNT_SID, "ConferenceSid": conf, "FriendlyName": name,
              "StatusCallbackEvent": kind}
    if seq is not None:
        params["SequenceNumber"] = str(seq)
    if ts is not None:
        params["Timestamp"] = formatdate(ts, usegmt=True)
    if call_sid is not None:
        params["CallSid"] = call_sid
    return params


def send(relay, *events):
    for params in events:
        answer = relay.webhook(CONF_PATH, params)
        assert answer.status_code == 204, answer.data


def present(relay, ref="standup"):
    answer = relay.get(f"/conferences/{ref}")
    assert answer.status_code == 200, answer.json
    return {p["call_sid"] for p in answer.json["participants"] if p["present"]}


def dial_in(relay, identity, name="standup"):
    sid = new_call_sid()
    answer = relay.webhook("/twilio/voice", voice(sid, identity, name))
    assert answer.status_code == 200
    return sid


def test_an_sdk_dialling_a_conference_joins_it_with_callbacks_to_callrelay(relay):
    sid = new_call_sid()
    answer = relay.webhook("/twilio/voice", voice(sid, "alice", "team-standup.2"))
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    (noun,) = ET.fromstring(answer.data).find("Dial")
    assert (noun.tag, noun.text) == ("Conference", "team-standup.2")
    assert noun.get("statusCallback").split("#")[0] == PUBLIC_BASE + CONF_PATH
    assert noun.get("statusCallbackEvent") == "start end join leave"
    leg = relay.get(f"/calls/{sid}").json["legs"][0]
    assert (leg["identity"], leg["live"]) == ("alice", True)


@pytest.mark.parametrize("name", ["", " ", "a/b", "<x>", "x" * 129, "CF" + "0" * 32, " lead"])
def test_a_bad_conference_name_is_told_and_dials_nothing(relay, name):
    answer = relay.webhook("/twilio/voice", voice(new_call_sid(), "alice", name))
    root = ET.fromstring(answer.data)
    assert answer.status_code == 200 and root.find("Dial") is None
    assert root.find("Say") is not None


def test_callbacks_out_of_order_and_twice_give_the_true_membership(relay):
    conf, alice, bob, phone = new_conference_sid(), *(new_call_sid() for _ in range(3))
    join_bob = event(conf, "participant-join", 3, bob)
    send(relay, event(conf, "participant-leave", 4, alice),  # alice's leave comes first
         join_bob, join_bob, event(conf, "conference-start", 2),
         event(conf, "participant-join", 1, alice), event(conf, "participant-join", 1, alice),
         event(conf, "participant-join", 5, phone))
    assert present(relay) == present(relay, conf) == {bob, phone}
    body = relay.get(f"/conferences/{conf}").json
    assert (body["conference_sid"], body["friendly_name"]) == (conf, "standup")
    assert (body["status"], body["live"], body["ended_at"]) == ("in-progress", True, None)
    assert {p["call_sid"] for p in body["participants"]} == {alice, bob, phone}


def test_without_sequence_numbers_timestamps_order_a_leave_before_its_join(relay):
    conf, alice = new_conference_sid(), new_call_sid()
    send(relay, event(conf, "participant-leave", call_sid=alice, ts=1_800_000_060),
         event(conf, "participant-join", call_sid=alice, ts=1_800_000_000))
    assert present(relay, conf) == set()
    (p,) = relay.get(f"/conferences/{conf}").json["participants"]
    assert p["joined_at"].startswith("2027-01-15T08:00:00") and p["left_at"] > p["joined_at"]


def test_conference_end_ends_everyone_and_a_late_join_does_not_revive_it(relay):
    conf, alice, bob = new_conference_sid(), new_call_sid(), new_call_sid()
    send(relay, event(conf, "participant-join", 1, alice), event(conf, "conference-end", 9),
         event(conf, "participant-join", 2, bob), event(conf, "conference-start", 1))
    body = relay.get(f"/conferences/{conf}").json
    assert (body["status"], body["live"]) == ("completed", False)
    assert present(relay, conf) == set()
    assert relay.notify({"conference": conf, "content": {}}).json["error"]["code"] \
        == "no_such_leg"


def test_unsigned_or_malformed_callbacks_record_nothing(relay):
    conf = new_conference_sid()
    params = event(conf, "participant-join", 1, new_call_sid())
    forged = relay.webhook(CONF_PATH, params, signature=sign(PUBLIC_BASE + CONF_PATH, params,
                                                             token="not-the-token"))
    assert forged.status_code == 403
    for bad in ({**params, "ConferenceSid": "CF123"}, {**params, "CallSid": ""},
                {**params, "StatusCallbackEvent": ""}):
        answer = relay.webhook(CONF_PATH, bad)
        assert answer.status_code == 422 and answer.json["error"]["code"] == "validation_failed"
    assert relay.get(f"/conferences/{conf}").status_code == 404


def test_notify_reaches_every_sdk_participant_and_no_phone(relay, twilio):
    call = conference_call(ACCOUNT_SID).with_tickets(TICKET_SECRET)
    for step in call.answer:
        if step.path == "/twilio/voice":
            answer = relay.webhook(step.path, step.params)
            assert ET.fromstring(answer.data).find("Dial/Conference").text == "standup"
    relay.play(call.answer)
    answer = relay.notify({"conference": "standup", "content": {"agenda": [1, 2]},
                           "idempotency_key": "standup-1"})
    assert answer.status_code == 201, answer.json
    sdk = set(call.sdk_sids.values())
    assert {m.call_sid for m in twilio.messages} == sdk
    assert all(m.content == '{"agenda":[1,2]}' for m in twilio.messages)
    assert {(m["call_sid"], m["identity"]) for m in answer.json["messages"]} == {
        (sid, who) for who, sid in call.sdk_sids.items()}
    # The phone's call was never seen: it was looked up at Twilio (which did not know it).
    assert [r.path for r in twilio.requests if r.method == "GET"] == [
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call.phone_sid}.json"]
    # The same key again: one key per leg, so Twilio de-duplicates every one of them.
    again = relay.notify({"conference": call.conference_sid, "content": {"agenda": [1, 2]},
                          "idempotency_key": "standup-1"})
    assert again.status_code == 201 and len(twilio.messages) == 2
    keys = {m.idempotency_key for m in twilio.messages}
    assert len(keys) == 2 and all(k.startswith("standup-1") for k in keys)
    relay.play(call.hangup)
    assert relay.notify({"conference": "standup", "content": {}}).status_code == 409


def test_a_participant_added_by_the_rest_api_is_looked_up_once(relay, twilio):
    conf, alice, carol, phone = new_conference_sid(), dial_in(relay, "alice"), *(
        new_call_sid() for _ in range(2))
    twilio.set_call(carol, "in-progress", from_="+15005550001", to="client:carol",
                    direction="outbound-api")
    twilio.set_call(phone, "in-progress", from_="+15005550001", to="+15005550006",
                    direction="outbound-api")
    send(relay, event(conf, "participant-join", 1, alice),
         event(conf, "participant-join", 2, carol), event(conf, "participant-join", 3, phone))
    answer = relay.notify({"conference": "standup", "content": {"n": 1}})
    assert answer.status_code == 201, answer.json
    assert {m.call_sid for m in twilio.messages} == {alice, carol}
    fetched = [r.path.rsplit("/", 1)[1] for r in twilio.requests
               if r.method == "GET" and r.path.endswith(".json") and "/Calls/" in r.path]
    assert sorted(fetched) == sorted([f"{carol}.json", f"{phone}.json"])
    # What was learned is stored: the next message asks Twilio nothing.
    asked = len(twilio.requests)
    assert relay.notify({"conference": "standup", "content": {"n": 2}}).status_code == 201
    assert [r.method for r in twilio.requests[asked:]] == ["POST", "POST"]
    legs = {p["call_sid"]: p["leg"] for p in relay.get("/conferences/standup").json[
        "participants"]}
    assert legs[carol]["identity"] == "carol" and legs[phone]["sdk"] is False
    assert legs[alice]["identity"] == "alice"


def test_a_conference_without_a_live_sdk_participant_is_409(relay, twilio):
    conf, phone = new_conference_sid(), new_call_sid()
    twilio.set_call(phone, "in-progress", to="+15005550006", direction="outbound-api")
    send(relay, event(conf, "participant-join", 1, phone))
    answer = relay.notify({"conference": "standup", "content": {}})
    assert answer.status_code == 409 and answer.json["error"]["code"] == "no_such_leg"
    assert answer.json["error"]["conference_sid"] == conf
    assert twilio.messages == []


def test_an_sdk_whose_call_ended_gets_nothing_though_its_leave_was_lost(relay, twilio):
    conf, alice, bob = new_conference_sid(), dial_in(relay, "alice"), dial_in(relay, "bob")
    send(relay, event(conf, "participant-join", 1, alice), event(conf, "participant-join", 2, bob))
    ended = {**voice(bob, "bob"), "CallStatus": "completed", "SequenceNumber": "1"}
    assert relay.webhook("/twilio/status", ended).status_code == 204
    assert relay.notify({"conference": conf, "content": {}}).status_code == 201
    assert [m.call_sid for m in twilio.messages] == [alice]


def test_a_reused_name_finds_the_conference_in_progress(relay, twilio):
    old, new = new_conference_sid(), new_conference_sid()
    alice = dial_in(relay, "alice")
    send(relay, event(old, "participant-join", 1, new_call_sid()), event(old, "conference-end", 2),
         event(new, "participant-join", 1, alice))
    assert relay.get("/conferences/standup").json["conference_sid"] == new
    assert relay.notify({"conference": "standup", "content": {}}).status_code == 201
    assert [m.call_sid for m in twilio.messages] == [alice]


@pytest.mark.parametrize("ref", ["nobody", "CF" + "0" * 32])
def test_an_unknown_conference_is_404(relay, twilio, ref):
    answer = relay.notify({"conference": ref, "content": {}})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "conference_not_found"
    got = relay.get(f"/conferences/{ref}")
    assert got.status_code == 404 and got.json["error"]["code"] == "conference_not_found"
    assert twilio.requests == []


@pytest.mark.parametrize("body", [
    {"conference": "standup", "call_sid": "CA" + "1" * 32},
    {"conference": "standup", "identity": "alice"},
    {"conference": "standup", "leg": "sdk"},
    {"conference": "", },
    {"conference": "a/b"},
    {"conference": "x" * 129},
    {"conference": 42},
])
def test_bad_conference_targets_are_422(relay, twilio, body):
    answer = relay.notify({**body, "content": {}})
    assert answer.status_code == 422 and answer.json["error"]["code"] == "validation_failed"
    assert twilio.requests == []


def test_get_conference_needs_a_token_and_a_sane_reference(relay, client):
    assert client.get("/conferences/standup").status_code == 401
    answer = relay.get("/conferences/<script>")
    assert answer.status_code == 422 and answer.json["error"]["field"] == "conference"
