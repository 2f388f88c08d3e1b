"""Which leg /notify picks, and what it refuses before anything reaches Twilio."""

import json

import pytest

from services.errors import (
    AmbiguousTarget,
    ContentTooLarge,
    LegNotLive,
    NoSuchLeg,
    ValidationFailed,
)
from services.legs.model import Leg
from services.use_cases.notify import parse_request, resolve_call_target, serialize_content

PARENT = "CA" + "a" * 32
CHILD = "CA" + "b" * 32
CHILD2 = "CA" + "c" * 32


def leg(sid, status="in-progress", parent=None, identity=None):
    return Leg(call_sid=sid, status=status, parent_sid=parent, identity=identity)


# An SDK calling out: the SDK is on the parent.
OUT = [leg(PARENT, identity="alice"), leg(CHILD, parent=PARENT)]
# A phone calling an SDK: the SDK is on the child.
IN = [leg(PARENT), leg(CHILD, parent=PARENT, identity="bob")]


@pytest.mark.parametrize("legs, given, expected", [
    (OUT, OUT[0], PARENT), (OUT, OUT[1], PARENT), (IN, IN[0], CHILD), (IN, IN[1], CHILD),
])
def test_sdk_leg_is_found_from_either_sid(legs, given, expected):
    assert resolve_call_target(legs, given, "sdk").call_sid == expected


def test_explicit_parent_and_child():
    assert resolve_call_target(IN, IN[1], "parent").call_sid == PARENT
    assert resolve_call_target(IN, IN[0], "child").call_sid == CHILD


def test_client_to_client_given_sid_wins():
    legs = [leg(PARENT, identity="alice"), leg(CHILD, parent=PARENT, identity="bob")]
    assert resolve_call_target(legs, legs[0], "sdk").call_sid == PARENT
    assert resolve_call_target(legs, legs[1], "sdk").call_sid == CHILD


def test_simultaneous_ring_is_ambiguous_until_one_answers():
    ringing = [leg(PARENT), leg(CHILD, "ringing", PARENT, "bob"),
               leg(CHILD2, "ringing", PARENT, "carol")]
    with pytest.raises(AmbiguousTarget) as err:
        resolve_call_target(ringing, ringing[0], "sdk")
    assert {c["call_sid"] for c in err.value.details["candidates"]} == {CHILD, CHILD2}
    answered = [ringing[0], leg(CHILD, "in-progress", PARENT, "bob"),
                leg(CHILD2, "canceled", PARENT, "carol")]
    assert resolve_call_target(answered, answered[0], "sdk").call_sid == CHILD


@pytest.mark.parametrize("status", ["initiated", "queued", "completed", "no-answer"])
def test_leg_that_is_not_live_is_a_conflict(status):
    legs = [leg(PARENT), leg(CHILD, status, PARENT, "bob")]
    with pytest.raises(LegNotLive) as err:
        resolve_call_target(legs, legs[0], "sdk")
    assert err.value.status == 409 and err.value.details["leg"]["status"] == status


def test_call_without_sdk_leg_or_child():
    phone_only = [leg(PARENT)]
    with pytest.raises(NoSuchLeg):
        resolve_call_target(phone_only, phone_only[0], "sdk")
    with pytest.raises(NoSuchLeg):
        resolve_call_target(phone_only, phone_only[0], "child")


@pytest.mark.parametrize("body, fragment", [
    ([], "JSON object"),
    ({"content": {}}, "exactly one target"),
    ({"call_sid": PARENT, "identity": "a", "content": {}}, "exactly one target"),
    ({"call_sid": "CA123", "content": {}}, "call_sid"),
    ({"call_sid": "ca" + "a" * 32, "content": {}}, "call_sid"),
    ({"call_sid": PARENT, "leg": "both", "content": {}}, "leg"),
    ({"identity": "", "content": {}}, "identity"),
    ({"identity": 7, "content": {}}, "identity"),
    ({"call_sid": PARENT}, "content is required"),
    ({"call_sid": PARENT, "content": "not json"}, "does not hold JSON"),
    ({"call_sid": PARENT, "content": {}, "idempotency_key": 5}, "idempotency_key"),
    ({"call_sid": PARENT, "content": {}, "colour": "red"}, "Unknown field"),
])
def test_invalid_requests_are_refused(body, fragment):
    with pytest.raises(ValidationFailed) as err:
        parse_request(body)
    assert fragment in err.value.message


def test_content_is_compact_json_and_json_strings_pass_verbatim():
    assert serialize_content({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    assert serialize_content('{"already": "json"}') == '{"already": "json"}'
    assert serialize_content(None) == "null"
    assert json.loads(serialize_content([1, "x"])) == [1, "x"]


def test_content_limit_is_ten_thousand_characters():
    at_limit = "x" * (10_000 - 2)
    assert len(serialize_content(json.dumps(at_limit))) == 10_000
    with pytest.raises(ContentTooLarge) as err:
        serialize_content(json.dumps(at_limit + "x"))
    assert err.value.status == 413 and err.value.details["length"] == 10_001
