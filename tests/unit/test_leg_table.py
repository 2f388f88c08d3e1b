"""The leg rules as a table: Twilio's callbacks, in its documented shapes → the leg a user sees.

Each row is a sequence of callbacks as Twilio sends them (a Voice URL request, then status
callbacks), folded in the order they arrive, each at its own arrival time, with every field of
the resulting leg written out by hand. Rows cover several arrival orders and duplicates; the
property tests in test_legs.py keep the invariants, these pin the answers.
"""

from __future__ import annotations

import pytest

from services.errors import ValidationFailed
from services.legs.model import Leg, LegEvent, client_identity, is_call_sid, parse_timestamp
from services.legs.rules import (
    EXPIRED_STATUS,
    STALE_FLOOR_S,
    TOMBSTONE_FLOOR_S,
    Retention,
    call_order,
    expires_at,
    from_tombstone,
    is_stale,
    merge,
    sdk_identity,
    tombstone,
    tombstone_expires_at,
)

ACCOUNT = "AC" + "a" * 32
PARENT = "CA" + "1" * 32
CHILD = "CA" + "2" * 32
ALICE = "client:alice"
BOB = "client:bob"
PHONE = "+14155552671"
CALLER_ID = "+15005550006"


def callback(sid: str, status: str, *, parent: str | None = None, from_: str | None = None,
             to: str | None = None, direction: str | None = None,
             account: str | None = ACCOUNT, seq: int | None = None) -> dict[str, str]:
    """A status callback's parameters, as Twilio posts them (absent fields are not sent)."""
    params = {"CallSid": sid, "CallStatus": status, "ApiVersion": "2010-04-01",
              "CallbackSource": "call-progress-events"}
    for name, value in (("ParentCallSid", parent), ("From", from_), ("To", to),
                        ("Direction", direction), ("AccountSid", account),
                        ("SequenceNumber", None if seq is None else str(seq))):
        if value is not None:
            params[name] = value
    return params


def voice(sid: str, from_: str, to: str) -> dict[str, str]:
    """The Voice URL request of a call a device (or a phone) places: always `ringing`."""
    return {"CallSid": sid, "CallStatus": "ringing", "From": from_, "To": to,
            "Direction": "inbound", "AccountSid": ACCOUNT, "ApiVersion": "2010-04-01"}


def dial(status: str, to: str = PHONE, from_: str = CALLER_ID, seq: int | None = None):
    """A <Dial> child's status callback."""
    return callback(CHILD, status, parent=PARENT, from_=from_, to=to,
                    direction="outbound-dial", seq=seq)


def fold(arrivals: list[tuple[float, dict[str, str]]]) -> Leg:
    leg = None
    for arrived_at, params in arrivals:
        leg = merge(leg, LegEvent.from_params(params), now=arrived_at)
    assert leg is not None
    return leg


def leg(sid: str, status: str, *, parent: str | None = None, from_: str | None = None,
        to: str | None = None, direction: str | None = None, identity: str | None = None,
        updated_at: float, ended_at: float | None = None,
        account: str | None = ACCOUNT) -> Leg:
    return Leg(call_sid=sid, status=status, parent_sid=parent, account_sid=account,
               from_=from_, to=to, direction=direction, identity=identity,
               updated_at=updated_at, ended_at=ended_at)


CHILD_TO_PHONE_DONE = leg(CHILD, "completed", parent=PARENT, from_=CALLER_ID, to=PHONE,
                          direction="outbound-dial", updated_at=40.0, ended_at=40.0)

TABLE = {
    "a device calls a phone: the parent leg, in order": (
        [(10.0, voice(PARENT, ALICE, PHONE)),
         (15.0, callback(PARENT, "in-progress", from_=ALICE, to=PHONE, direction="inbound")),
         (40.0, callback(PARENT, "completed", from_=ALICE, to=PHONE, direction="inbound"))],
        leg(PARENT, "completed", from_=ALICE, to=PHONE, direction="inbound", identity="alice",
            updated_at=40.0, ended_at=40.0)),
    "a device calls a phone: the dialled child, in order": (
        [(11.0, dial("initiated", seq=0)), (12.0, dial("ringing", seq=1)),
         (15.0, dial("in-progress", seq=2)), (40.0, dial("completed", seq=3))],
        CHILD_TO_PHONE_DONE),
    "the child's callbacks in reverse": (
        [(40.0, dial("completed")), (41.0, dial("in-progress")), (42.0, dial("ringing")),
         (43.0, dial("initiated"))],
        CHILD_TO_PHONE_DONE),
    "the child's callbacks shuffled, with duplicates": (
        [(12.0, dial("ringing")), (13.0, dial("ringing")), (40.0, dial("completed")),
         (41.0, dial("initiated")), (42.0, dial("completed")), (43.0, dial("in-progress"))],
        CHILD_TO_PHONE_DONE),
    "a repeated terminal callback keeps the first end": (
        [(12.0, dial("ringing")), (40.0, dial("completed")), (95.0, dial("completed"))],
        CHILD_TO_PHONE_DONE),
    "a different terminal status after the end changes nothing": (
        [(12.0, dial("in-progress")), (40.0, dial("completed")), (50.0, dial("busy")),
         (60.0, dial("failed"))],
        CHILD_TO_PHONE_DONE),
    "a phone calls a device: the device is on the child": (
        [(11.0, dial("ringing", to=BOB, from_=PHONE)),
         (14.0, dial("in-progress", to=BOB, from_=PHONE))],
        leg(CHILD, "in-progress", parent=PARENT, from_=PHONE, to=BOB, direction="outbound-dial",
            identity="bob", updated_at=14.0)),
    "a device nobody answers": (
        [(11.0, dial("initiated", to=BOB)), (12.0, dial("ringing", to=BOB)),
         (42.0, dial("no-answer", to=BOB))],
        leg(CHILD, "no-answer", parent=PARENT, from_=CALLER_ID, to=BOB,
            direction="outbound-dial", identity="bob", updated_at=42.0, ended_at=42.0)),
    "a call canceled while queued": (
        [(1.0, callback(PARENT, "queued", from_=CALLER_ID, to=BOB, direction="outbound-api")),
         (3.0, callback(PARENT, "canceled", from_=CALLER_ID, to=BOB,
                        direction="outbound-api"))],
        leg(PARENT, "canceled", from_=CALLER_ID, to=BOB, direction="outbound-api",
            identity="bob", updated_at=3.0, ended_at=3.0)),
    "a REST-created call to a device: the device is the parent's To": (
        [(1.0, callback(PARENT, "initiated", from_=CALLER_ID, to="client:carol",
                        direction="outbound-api")),
         (2.0, callback(PARENT, "ringing", from_=CALLER_ID, to="client:carol",
                        direction="outbound-api"))],
        leg(PARENT, "ringing", from_=CALLER_ID, to="client:carol", direction="outbound-api",
            identity="carol", updated_at=2.0)),
    "later callbacks do not overwrite From and To": (
        [(10.0, voice(PARENT, ALICE, PHONE)),
         (20.0, callback(PARENT, "in-progress", from_="client:mallory", to="+19998887777",
                         direction="inbound"))],
        leg(PARENT, "in-progress", from_=ALICE, to=PHONE, direction="inbound",
            identity="alice", updated_at=20.0)),
    "later callbacks do not overwrite the parent, the direction or the account": (
        [(11.0, dial("ringing", to=BOB)),
         (14.0, callback(CHILD, "in-progress", parent="CA" + "9" * 32, from_=CALLER_ID, to=BOB,
                         direction="outbound-api", account="AC" + "b" * 32))],
        leg(CHILD, "in-progress", parent=PARENT, from_=CALLER_ID, to=BOB,
            direction="outbound-dial", identity="bob", updated_at=14.0)),
    "what the first callback lacks, later ones fill in": (
        [(40.0, callback(CHILD, "completed", account=None)), (41.0, dial("ringing", to=BOB))],
        leg(CHILD, "completed", parent=PARENT, from_=CALLER_ID, to=BOB,
            direction="outbound-dial", identity="bob", updated_at=41.0, ended_at=40.0)),
    "without Direction, the parent's SDK is at From": (
        [(5.0, callback(PARENT, "ringing", from_=ALICE, to=BOB))],
        leg(PARENT, "ringing", from_=ALICE, to=BOB, identity="alice", updated_at=5.0)),
    "without Direction, a child's SDK is at To": (
        [(5.0, callback(CHILD, "ringing", parent=PARENT, from_=ALICE, to=BOB))],
        leg(CHILD, "ringing", parent=PARENT, from_=ALICE, to=BOB, identity="bob",
            updated_at=5.0)),
    "a Direction that arrives later moves the SDK to To": (
        [(5.0, callback(PARENT, "ringing", from_=CALLER_ID, to="client:dave")),
         (6.0, callback(PARENT, "ringing", from_=CALLER_ID, to="client:dave",
                        direction="outbound-api"))],
        leg(PARENT, "ringing", from_=CALLER_ID, to="client:dave", direction="outbound-api",
            identity="dave", updated_at=6.0)),
    "a status that does not move forward is not news": (
        [(12.0, dial("in-progress")), (13.0, dial("ringing")), (14.0, dial("queued"))],
        leg(CHILD, "in-progress", parent=PARENT, from_=CALLER_ID, to=PHONE,
            direction="outbound-dial", updated_at=12.0)),
}


@pytest.mark.parametrize(("arrivals", "expected"), TABLE.values(), ids=TABLE.keys())
def test_callbacks_make_the_leg_a_user_expects(arrivals, expected):
    assert fold(arrivals) == expected


def test_an_event_that_adds_nothing_returns_the_leg_itself():
    first = fold([(12.0, dial("ringing"))])
    assert merge(first, LegEvent.from_params(dial("ringing")), now=20.0) is first
    assert merge(first, LegEvent.from_params(dial("initiated")), now=20.0) is first


def test_an_event_that_adds_only_an_account_is_news():
    first = fold([(12.0, callback(CHILD, "ringing", parent=PARENT, account=None))])
    second = merge(first, LegEvent.from_params(callback(CHILD, "ringing", parent=PARENT)), 20.0)
    assert (second.account_sid, second.updated_at) == (ACCOUNT, 20.0)


@pytest.mark.parametrize(("direction", "parent", "from_", "to", "identity"), [
    ("inbound", None, ALICE, BOB, "alice"),
    ("inbound", PARENT, ALICE, BOB, "alice"),
    ("outbound-dial", PARENT, ALICE, BOB, "bob"),
    ("outbound-api", None, ALICE, BOB, "bob"),
    (None, None, ALICE, BOB, "alice"),
    (None, PARENT, ALICE, BOB, "bob"),
    ("", None, ALICE, BOB, "alice"),
    ("inbound", None, PHONE, BOB, None),
    ("outbound-dial", PARENT, ALICE, PHONE, None),
    ("inbound", None, None, None, None),
])
def test_sdk_identity(direction, parent, from_, to, identity):
    assert sdk_identity(direction, parent, from_, to) == identity


# --- the model: what a callback makes ------------------------------------------------------

def test_a_callback_becomes_an_event():
    params = {**dial("ringing", to=BOB, seq=7), "Timestamp": "Tue, 01 Jan 2030 10:00:00 +0000"}
    assert LegEvent.from_params(params) == LegEvent(
        call_sid=CHILD, status="ringing", parent_sid=PARENT, account_sid=ACCOUNT,
        from_=CALLER_ID, to=BOB, direction="outbound-dial", sequence=7,
        timestamp=1893492000.0)


def test_empty_fields_are_absent():
    params = {"CallSid": CHILD, "CallStatus": "ringing", "ParentCallSid": "", "From": "",
              "To": "", "Direction": "", "AccountSid": "", "SequenceNumber": "",
              "Timestamp": ""}
    assert LegEvent.from_params(params) == LegEvent(call_sid=CHILD, status="ringing")


@pytest.mark.parametrize(("given", "sequence"), [
    ("0", 0), ("0012", 12), ("9" * 18, 10**18 - 1), ("9" * 19, None), ("²", None),
    ("-1", None), ("1.5", None), (" 3", None),
])
def test_sequence_numbers(given, sequence):
    params = {"CallSid": CHILD, "CallStatus": "ringing", "SequenceNumber": given}
    assert LegEvent.from_params(params).sequence == sequence


@pytest.mark.parametrize("params", [
    {"CallStatus": "ringing"},
    {"CallSid": "CA123", "CallStatus": "ringing"},
    {"CallSid": CHILD, "CallStatus": "ringing", "ParentCallSid": "PA" + "1" * 32},
    {"CallSid": CHILD},
    {"CallSid": CHILD, "CallStatus": "answered"},
])
def test_callbacks_that_make_no_event(params):
    with pytest.raises(ValidationFailed):
        LegEvent.from_params(params)


@pytest.mark.parametrize("params", [
    {"CallStatus": "ringing"},
    {"CallSid": "CA123", "CallStatus": "ringing"},
    {"CallSid": CHILD, "CallStatus": "ringing", "ParentCallSid": "PA" + "1" * 32},
])
def test_a_callback_without_call_sids_says_which_it_needs(params):
    with pytest.raises(ValidationFailed) as refused:
        LegEvent.from_params(params)
    assert refused.value.message == "CallSid (and ParentCallSid, when given) must be call SIDs."


def test_an_unknown_status_is_named_in_the_error():
    with pytest.raises(ValidationFailed) as refused:
        LegEvent.from_params({"CallSid": CHILD, "CallStatus": "answered"})
    assert refused.value.message == "Unknown CallStatus 'answered'."


def test_a_voice_request_ignores_what_only_the_sdk_could_have_sent():
    params = {**voice(PARENT, ALICE, BOB), "ParentCallSid": CHILD, "SequenceNumber": "4",
              "Timestamp": "Tue, 01 Jan 2030 10:00:00 +0000"}
    assert LegEvent.from_voice_request(params) == LegEvent(
        call_sid=PARENT, status="ringing", account_sid=ACCOUNT, from_=ALICE, to=BOB,
        direction="inbound")


@pytest.mark.parametrize(("direction", "kept"), [
    ("inbound", "inbound"), (None, None), ("outbound-api", None), ("outbound-dial", None)])
def test_a_voice_request_believes_only_an_inbound_direction(direction, kept):
    params = {"CallSid": PARENT, "CallStatus": "ringing", "From": ALICE, "To": BOB}
    if direction:
        params["Direction"] = direction
    assert LegEvent.from_voice_request(params).direction == kept


@pytest.mark.parametrize(("value", "epoch"), [
    ("Tue, 01 Jan 2030 10:00:00 +0000", 1893492000.0),
    ("Tue, 01 Jan 2030 10:00:00 -0000", 1893492000.0),
    ("Tue, 01 Jan 2030 10:00:00", 1893492000.0),             # no zone: UTC, not local time
    ("Tue, 01 Jan 2030 12:00:00 +0200", 1893492000.0),
    ("Tue, 01 Jan 2030 05:00:00 -0500", 1893492000.0),
    ("", None),
    (None, None),
    ("yesterday", None),
    ("Tue, 45 Jan 2030 10:00:00 +0000", None),
])
def test_parse_timestamp(value, epoch):
    assert parse_timestamp(value) == epoch


@pytest.mark.parametrize(("value", "ok"), [
    (CHILD, True), ("CA" + "A" * 32, True), ("CA" + "1" * 31, False), ("CA" + "1" * 33, False),
    ("PA" + "1" * 32, False), ("CA" + "g" * 32, False), (None, False), (42, False),
])
def test_is_call_sid(value, ok):
    assert is_call_sid(value) is ok


@pytest.mark.parametrize(("address", "identity"), [
    ("client:alice", "alice"), ("client:", None), ("client", None), (PHONE, None),
    ("", None), (None, None), ("sip:alice@example.com", None), ("client:a:b", "a:b"),
])
def test_client_identity(address, identity):
    assert client_identity(address) == identity


def test_a_leg_as_the_api_shows_it():
    child = leg(CHILD, "ringing", parent=PARENT, from_=PHONE, to=BOB, direction="outbound-dial",
                identity="bob", updated_at=3.0)
    assert child.to_json() == {"call_sid": CHILD, "leg": "child", "parent_call_sid": PARENT,
                               "status": "ringing", "live": True, "sdk": True,
                               "identity": "bob", "from": PHONE, "to": BOB,
                               "direction": "outbound-dial"}
    parent = leg(PARENT, "completed", from_=PHONE, to=CALLER_ID, updated_at=3.0, ended_at=3.0)
    assert parent.to_json() == {"call_sid": PARENT, "leg": "parent", "parent_call_sid": None,
                                "status": "completed", "live": False, "sdk": False,
                                "identity": None, "from": PHONE, "to": CALLER_ID,
                                "direction": None}
    assert (child.root_sid, parent.root_sid) == (PARENT, PARENT)


@pytest.mark.parametrize(("status", "live", "ended"), [
    ("queued", False, False), ("initiated", False, False), ("ringing", True, False),
    ("in-progress", True, False), ("completed", False, True), ("busy", False, True),
    ("failed", False, True), ("no-answer", False, True), ("canceled", False, True),
])
def test_which_statuses_are_live_and_which_ended(status, live, ended):
    state = Leg(call_sid=CHILD, status=status)
    assert (state.is_live, state.is_ended) == (live, ended)


# --- retention, expiry and tombstones --------------------------------------------------------

HOUR = 3600.0


def test_retention_defaults():
    assert Retention() == Retention(leg_retention_s=HOUR, max_call_duration_s=4 * HOUR)
    assert (STALE_FLOOR_S, TOMBSTONE_FLOOR_S, EXPIRED_STATUS) == (900.0, 604800.0, "completed")


@pytest.mark.parametrize(("retention", "stale_after_s", "tombstone_s"), [
    (Retention(), HOUR, 7 * 24 * HOUR),
    (Retention(leg_retention_s=60.0), 900.0, 7 * 24 * HOUR),
    (Retention(leg_retention_s=2 * 24 * HOUR, max_call_duration_s=3 * 24 * HOUR),
     2 * 24 * HOUR, 8 * 24 * HOUR),
])
def test_retention_windows(retention, stale_after_s, tombstone_s):
    assert (retention.stale_after_s, retention.tombstone_s) == (stale_after_s, tombstone_s)


ENDED = Leg(call_sid=CHILD, status="busy", updated_at=1000.0, ended_at=900.0)
LIVE_LEG = Leg(call_sid=CHILD, status="in-progress", updated_at=1000.0)


def test_an_ended_leg_expires_retention_after_its_end():
    assert expires_at(ENDED, Retention()) == 900.0 + HOUR
    assert tombstone_expires_at(ENDED, Retention()) == 900.0 + 7 * 24 * HOUR
    assert tombstone(ENDED, Retention()) == ("busy", 900.0, 900.0 + 7 * 24 * HOUR)


def test_a_leg_that_never_ended_expires_after_the_longest_call_and_is_tombstoned_completed():
    assert expires_at(LIVE_LEG, Retention()) == 1000.0 + 4 * HOUR
    assert tombstone_expires_at(LIVE_LEG, Retention()) == 1000.0 + 7 * 24 * HOUR
    assert tombstone(LIVE_LEG, Retention()) == (
        "completed", 1000.0 + 4 * HOUR, 1000.0 + 4 * HOUR + 7 * 24 * HOUR)


def test_a_tombstone_describes_a_forgotten_ended_leg():
    forgotten = from_tombstone(CHILD, "busy", 900.0)
    assert forgotten == Leg(call_sid=CHILD, status="busy", updated_at=900.0, ended_at=900.0)
    assert forgotten.forgotten is True
    assert Leg(call_sid=CHILD, status="busy").forgotten is False


class Stamp:
    def __init__(self, timestamp: float | None) -> None:
        self.timestamp = timestamp


@pytest.mark.parametrize(("timestamp", "stale"), [
    (None, False), (10_000.0, False), (10_000.0 - HOUR, False), (10_000.0 - HOUR - 1, True),
    (20_000.0, False),
])
def test_a_callback_stamped_longer_ago_than_retention_is_stale(timestamp, stale):
    assert is_stale(Stamp(timestamp), 10_000.0, Retention()) is stale


def test_a_calls_legs_are_listed_parent_first_then_oldest_first():
    parent = Leg(call_sid=PARENT, status="in-progress", updated_at=9.0)
    older = Leg(call_sid="CA" + "4" * 32, status="ringing", parent_sid=PARENT, updated_at=2.0)
    newer = Leg(call_sid="CA" + "3" * 32, status="ringing", parent_sid=PARENT, updated_at=5.0)
    tied = Leg(call_sid="CA" + "5" * 32, status="ringing", parent_sid=PARENT, updated_at=5.0)
    assert sorted([tied, newer, parent, older], key=call_order) == [parent, older, newer, tied]
    assert call_order(parent) == (False, 9.0, PARENT)


@pytest.fixture
def server_in_new_york(monkeypatch):
    """The process's local time zone is not UTC (as on a developer's machine)."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("value", ["Tue, 01 Jan 2030 10:00:00", "Tue, 01 Jan 2030 10:00:00 -0000",
                                   "Tue, 01 Jan 2030 10:00:00 +0000"])
def test_a_timestamp_is_utc_whatever_the_servers_zone(server_in_new_york, value):
    assert parse_timestamp(value) == 1893492000.0
