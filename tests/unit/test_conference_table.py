"""Conference rules as a table: Twilio's conference callbacks → who is in it, written by hand.

Each row folds callbacks in the order they arrive (each at its arrival time) and states the
conference a user would expect: its status, start, end, name and who is present.
"""

from __future__ import annotations

import pytest

from services.errors import ValidationFailed
from services.legs.conferences import (
    Conference,
    ConferenceEvent,
    Mark,
    Participant,
    conference_ref,
    expires_at,
    fold,
    from_tombstone,
    is_conference_name,
    is_conference_sid,
    participant_order,
    tombstone,
)
from services.legs.rules import Retention

CF = "CF" + "c" * 32
ACCOUNT = "AC" + "a" * 32
ALICE = "CA" + "1" * 32
BOB = "CA" + "2" * 32
PHONE = "CA" + "3" * 32
T = 1_893_492_000.0  # Tue, 01 Jan 2030 10:00:00 +0000
STAMPS = {offset: f"Tue, 01 Jan 2030 10:{offset // 60:02d}:{offset % 60:02d} +0000"
          for offset in range(0, 3600)}


def cb(kind: str, call: str | None = None, seq: int | None = None,
       stamp: int | None = None, name: str | None = "standup") -> dict[str, str]:
    """A conference status callback's parameters, as Twilio posts them."""
    params = {"ConferenceSid": CF, "StatusCallbackEvent": kind, "AccountSid": ACCOUNT}
    if name is not None:
        params["FriendlyName"] = name
    if call is not None:
        params["CallSid"] = call
    if seq is not None:
        params["SequenceNumber"] = str(seq)
    if stamp is not None:
        params["Timestamp"] = STAMPS[stamp]
    return params


def run(arrivals: list[tuple[float, dict[str, str]]]) -> Conference:
    conference = None
    for arrived_at, params in arrivals:
        conference = fold(conference, ConferenceEvent.from_params(params), arrived_at)
    assert conference is not None
    return conference


def seen(conference: Conference) -> tuple:
    assert conference.sid == CF
    return (conference.status, conference.friendly_name, conference.started_at,
            conference.ended_at, [p.call_sid for p in conference.present()],
            [p.call_sid for p in conference.participants], conference.updated_at)


TABLE = {
    "two join after the start": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 2, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 3, cb("participant-join", BOB, seq=3, stamp=2))],
        ("in-progress", "standup", T, None, [ALICE, BOB], [ALICE, BOB], T + 3)),
    "joins before the start callback": (
        [(T + 1, cb("participant-join", BOB, seq=2, stamp=2)),
         (T + 2, cb("participant-join", ALICE, seq=1, stamp=1)),
         (T + 3, cb("conference-start", seq=0, stamp=0))],
        ("in-progress", "standup", T, None, [ALICE, BOB], [ALICE, BOB], T + 3)),
    "no start yet": (
        [(T + 5, cb("participant-join", ALICE, seq=1, stamp=1))],
        ("init", "standup", None, None, [ALICE], [ALICE], T + 5)),
    "one leaves": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 2, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 3, cb("participant-join", BOB, seq=3, stamp=2)),
         (T + 9, cb("participant-leave", ALICE, seq=4, stamp=8))],
        ("in-progress", "standup", T, None, [BOB], [ALICE, BOB], T + 9)),
    "the leave arrives before the join it follows": (
        [(T + 1, cb("participant-leave", ALICE, seq=4, stamp=8)),
         (T + 2, cb("participant-join", ALICE, seq=2, stamp=1))],
        ("init", "standup", None, None, [], [ALICE], T + 2)),
    "leaves and joins again": (
        [(T + 2, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 9, cb("participant-leave", ALICE, seq=4, stamp=8)),
         (T + 20, cb("participant-join", ALICE, seq=7, stamp=19))],
        ("init", "standup", None, None, [ALICE], [ALICE], T + 20)),
    "the sequence orders, not the timestamps": (
        [(T + 2, cb("participant-join", ALICE, seq=5, stamp=1)),
         (T + 9, cb("participant-leave", ALICE, seq=4, stamp=8))],
        ("init", "standup", None, None, [ALICE], [ALICE], T + 9)),
    "without sequence numbers, the timestamps order": (
        [(T + 2, cb("participant-join", ALICE, stamp=9)),
         (T + 9, cb("participant-leave", ALICE, stamp=8))],
        ("init", "standup", None, None, [ALICE], [ALICE], T + 9)),
    "without either, the arrival orders": (
        [(T + 2, cb("participant-join", ALICE)),
         (T + 9, cb("participant-leave", ALICE))],
        ("init", "standup", None, None, [], [ALICE], T + 9)),
    "a join and a leave that cannot be ordered count as left": (
        [(T + 2, cb("participant-join", ALICE, seq=3)),
         (T + 9, cb("participant-leave", ALICE, seq=3))],
        ("init", "standup", None, None, [], [ALICE], T + 9)),
    "of two leaves out of order, the latest counts": (
        [(T + 2, cb("participant-join", ALICE, seq=5, stamp=5)),
         (T + 3, cb("participant-leave", ALICE, seq=6, stamp=6)),
         (T + 4, cb("participant-leave", ALICE, seq=4, stamp=4))],
        ("init", "standup", None, None, [], [ALICE], T + 3)),
    "of two joins out of order, the latest counts": (
        [(T + 2, cb("participant-leave", ALICE, seq=5, stamp=5)),
         (T + 3, cb("participant-join", ALICE, seq=6, stamp=6)),
         (T + 4, cb("participant-join", ALICE, seq=4, stamp=4))],
        ("init", "standup", None, None, [ALICE], [ALICE], T + 3)),
    "duplicates change nothing": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 2, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 3, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 4, cb("conference-start", seq=1, stamp=0))],
        ("in-progress", "standup", T, None, [ALICE], [ALICE], T + 2)),
    "a later start does not move the start": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 30, cb("conference-start", seq=9, stamp=29))],
        ("in-progress", "standup", T, None, [], [], T + 1)),
    "the end is final: nobody is present after it": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 2, cb("participant-join", ALICE, seq=2, stamp=1)),
         (T + 60, cb("conference-end", seq=9, stamp=60)),
         (T + 61, cb("participant-join", BOB, seq=10, stamp=61)),
         (T + 90, cb("conference-end", seq=11, stamp=90))],
        ("completed", "standup", T, T + 60, [], [ALICE, BOB], T + 61)),
    "the first name given is kept": (
        [(T + 1, cb("participant-join", ALICE, seq=1, name=None)),
         (T + 2, cb("participant-join", BOB, seq=2, name="standup")),
         (T + 3, cb("participant-join", PHONE, seq=3, name="renamed"))],
        ("init", "standup", None, None, [ALICE, BOB, PHONE], [ALICE, BOB, PHONE], T + 3)),
    "participants listed by when they first appear": (
        [(T + 1, cb("participant-join", PHONE, stamp=5)),
         (T + 2, cb("participant-leave", BOB, stamp=3)),
         (T + 3, cb("participant-join", ALICE, stamp=5))],
        ("init", "standup", None, None, [ALICE, PHONE], [BOB, ALICE, PHONE], T + 3)),
    "other events keep what is known": (
        [(T + 1, cb("conference-start", seq=1, stamp=0)),
         (T + 2, cb("participant-mute", ALICE, seq=2, stamp=1)),
         (T + 3, cb("conference-record-completed", seq=3, stamp=2))],
        ("in-progress", "standup", T, None, [], [], T + 1)),
}


@pytest.mark.parametrize(("arrivals", "expected"), TABLE.values(), ids=TABLE.keys())
def test_callbacks_make_the_conference_a_user_expects(arrivals, expected):
    assert seen(run(arrivals)) == expected


def test_the_account_is_kept_from_the_first_callback_that_names_it():
    first = ConferenceEvent.from_params({"ConferenceSid": CF,
                                         "StatusCallbackEvent": "conference-start"})
    conference = fold(None, first, T)
    assert conference.account_sid is None
    conference = fold(conference, ConferenceEvent.from_params(cb("conference-start")), T + 1)
    assert (conference.account_sid, conference.updated_at) == (ACCOUNT, T + 1)


def test_a_callback_that_adds_nothing_returns_the_conference_itself():
    conference = run([(T + 1, cb("participant-join", ALICE, seq=2))])
    again = ConferenceEvent.from_params(cb("participant-join", ALICE, seq=2))
    assert fold(conference, again, T + 5) is conference


# --- marks ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("this", "other", "after"), [
    (Mark(2, 10.0), Mark(1, 20.0), True),
    (Mark(1, 20.0), Mark(2, 10.0), False),
    (Mark(2, 10.0), Mark(2, 5.0), False),
    (Mark(None, 20.0), Mark(1, 10.0), True),
    (Mark(5, 10.0), Mark(None, 20.0), False),
    (Mark(None, 10.0), Mark(None, 10.0), False),
    (Mark(0, 10.0), Mark(None, 9.0), True),
])
def test_which_mark_comes_after(this, other, after):
    assert this.after(other) is after


@pytest.mark.parametrize(("participant", "joined_last"), [
    (Participant(ALICE), False),
    (Participant(ALICE, joined=Mark(1, 1.0)), True),
    (Participant(ALICE, left=Mark(1, 1.0)), False),
    (Participant(ALICE, joined=Mark(2, 1.0), left=Mark(1, 2.0)), True),
    (Participant(ALICE, joined=Mark(1, 2.0), left=Mark(2, 1.0)), False),
])
def test_joined_last(participant, joined_last):
    assert participant.joined_last is joined_last


def test_participant_order_and_lookup():
    never = Participant(BOB)
    assert participant_order(never) == (0.0, BOB)
    assert participant_order(Participant(ALICE, left=Mark(None, 7.0))) == (7.0, ALICE)
    conference = Conference(sid=CF, participants=(Participant(ALICE), never))
    assert conference.participant(BOB) is never
    assert conference.participant(PHONE) is None


# --- callbacks that make an event, and those that do not -------------------------------------

def test_a_participant_callback_becomes_an_event():
    event = ConferenceEvent.from_params(cb("participant-join", ALICE, seq=12, stamp=0))
    assert event == ConferenceEvent(conference_sid=CF, kind="participant-join",
                                    friendly_name="standup", call_sid=ALICE,
                                    account_sid=ACCOUNT, sequence=12, timestamp=T)


@pytest.mark.parametrize(("field", "value", "kept"), [
    ("SequenceNumber", "x7", None), ("SequenceNumber", "9" * 19, None),
    ("SequenceNumber", "", None), ("Timestamp", "soon", None), ("Timestamp", "", None),
    ("FriendlyName", "", None), ("AccountSid", "", None),
])
def test_unreadable_or_empty_fields_are_absent(field, value, kept):
    params = {**cb("participant-join", ALICE, seq=1, stamp=0), field: value}
    event = ConferenceEvent.from_params(params)
    attribute = {"SequenceNumber": "sequence", "Timestamp": "timestamp",
                 "FriendlyName": "friendly_name", "AccountSid": "account_sid"}[field]
    assert getattr(event, attribute) == kept


@pytest.mark.parametrize(("params", "message"), [
    ({"StatusCallbackEvent": "conference-start"},
     "ConferenceSid must be CF followed by 32 hex digits."),
    ({"ConferenceSid": "CF123", "StatusCallbackEvent": "conference-start"},
     "ConferenceSid must be CF followed by 32 hex digits."),
    ({"ConferenceSid": CF}, "StatusCallbackEvent is missing or malformed."),
    ({"ConferenceSid": CF, "StatusCallbackEvent": "Conference-Start"},
     "StatusCallbackEvent is missing or malformed."),
    ({"ConferenceSid": CF, "StatusCallbackEvent": "x" * 65},
     "StatusCallbackEvent is missing or malformed."),
    ({"ConferenceSid": CF, "StatusCallbackEvent": "participant-join"},
     "A participant event needs a CallSid (CA + 32 hex digits)."),
    ({"ConferenceSid": CF, "StatusCallbackEvent": "conference-start", "CallSid": "CA1"},
     "A participant event needs a CallSid (CA + 32 hex digits)."),
    ({"ConferenceSid": CF, "StatusCallbackEvent": "conference-start",
      "FriendlyName": "n" * 257}, "FriendlyName is over 256 characters."),
])
def test_callbacks_that_make_no_event(params, message):
    with pytest.raises(ValidationFailed) as refused:
        ConferenceEvent.from_params(params)
    assert refused.value.message == message


def test_a_name_of_256_characters_is_kept():
    params = {"ConferenceSid": CF, "StatusCallbackEvent": "conference-start",
              "FriendlyName": "n" * 256}
    assert ConferenceEvent.from_params(params).friendly_name == "n" * 256


# --- names and references ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "sid", "name"), [
    (CF, True, False),
    ("CF" + "C" * 32, True, False),
    ("CF" + "c" * 31, False, True),
    ("standup", False, True),
    ("room 42", False, True),
    ("a", False, True),
    ("x" * 128, False, True),
    ("x" * 129, False, False),
    (" standup", False, False),
    ("standup ", False, False),
    ("", False, False),
    ("a/b", False, False),
    ("<b>", False, False),
    ("sales_team.eu@acme+1-2", False, True),
    (None, False, False),
    (7, False, False),
])
def test_conference_sids_and_names(value, sid, name):
    assert (is_conference_sid(value), is_conference_name(value)) == (sid, name)


def test_conference_refs():
    assert conference_ref(CF) == CF
    assert conference_ref("room 42") == "room 42"
    with pytest.raises(ValidationFailed) as refused:
        conference_ref(" x", field="target")
    assert refused.value.details == {"field": "target"}
    assert refused.value.message == (
        "target must be a conference SID (CF followed by 32 hex digits) or a name of 1 to 128 "
        "letters, digits, spaces and _.@+- (no space at either end).")


# --- expiry and tombstones -----------------------------------------------------------------

HOUR = 3600.0


def test_an_ended_conference_expires_retention_after_its_last_change():
    ended = Conference(sid=CF, ended_at=100.0, updated_at=150.0)
    assert expires_at(ended, Retention()) == 150.0 + HOUR
    assert tombstone(ended, Retention()) == (100.0, 150.0 + 7 * 24 * HOUR)


def test_a_conference_never_ended_expires_after_the_longest_call():
    live = Conference(sid=CF, started_at=100.0, updated_at=150.0)
    assert expires_at(live, Retention()) == 150.0 + 4 * HOUR
    assert tombstone(live, Retention()) == (150.0 + 4 * HOUR,
                                            150.0 + 4 * HOUR + 7 * 24 * HOUR)


def test_a_tombstone_describes_an_ended_conference():
    assert from_tombstone(CF, 99.0) == Conference(sid=CF, ended_at=99.0, updated_at=99.0)
    assert from_tombstone(CF, 99.0).status == "completed"
