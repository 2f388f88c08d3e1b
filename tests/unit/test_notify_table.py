"""/notify's rules as tables: each body → the request or the exact error a caller reads, and each
call's legs + `leg` → the leg that gets the message, or the 409/404 that says why none does."""

from __future__ import annotations

import pytest

from services.errors import (
    AmbiguousTarget,
    ContentTooLarge,
    LegNotLive,
    NoSuchLeg,
    RelayError,
    ValidationFailed,
)
from services.legs.model import Leg
from services.use_cases.notify import NotifyRequest, parse_request, resolve_call_target

P = "CA" + "1" * 32
C1 = "CA" + "2" * 32
C2 = "CA" + "3" * 32
CF = "CF" + "c" * 32


@pytest.mark.parametrize(("body", "request_"), [
    ({"call_sid": P, "content": {"a": 1}},
     NotifyRequest(content='{"a":1}', call_sid=P)),
    ({"call_sid": P, "content": {}, "leg": "child", "idempotency_key": "k"},
     NotifyRequest(content="{}", call_sid=P, leg="child", idempotency_key="k")),
    ({"call_sid": P, "content": {}, "leg": "sdk"},
     NotifyRequest(content="{}", call_sid=P, leg="sdk")),
    ({"identity": "alice", "content": '[1, 2]'},
     NotifyRequest(content="[1, 2]", identity="alice")),
    ({"identity": " alice ", "content": None},
     NotifyRequest(content="null", identity=" alice ")),
    ({"conference": "standup", "content": "\"hi\"", "idempotency_key": "k" * 255},
     NotifyRequest(content='"hi"', conference="standup", idempotency_key="k" * 255)),
    ({"conference": CF, "content": 0},
     NotifyRequest(content="0", conference=CF)),
])
def test_valid_bodies(body, request_):
    assert parse_request(body) == request_


@pytest.mark.parametrize(("body", "fans_out"), [
    ({"call_sid": P, "content": 1}, False),
    ({"identity": "alice", "content": 1}, True),
    ({"conference": "standup", "content": 1}, True),
])
def test_identities_and_conferences_fan_out(body, fans_out):
    assert parse_request(body).fans_out is fans_out


TARGET = "Give exactly one target: call_sid, identity or conference."
KEY = ("idempotency_key must be a string of 1 to 255 characters of Unicode text.",
       {"field": "idempotency_key"})


@pytest.mark.parametrize(("body", "message", "details"), [
    ([], "The body must be a JSON object.", {}),
    ("x", "The body must be a JSON object.", {}),
    ({"call_sid": P, "content": {}, "colour": "red", "b": 1}, "Unknown field(s): b, colour.",
     {"fields": ["b", "colour"]}),
    ({"content": {}}, TARGET, {}),
    ({"call_sid": P, "identity": "a", "content": {}}, TARGET, {}),
    ({"identity": "a", "conference": "b", "content": {}}, TARGET, {}),
    ({"call_sid": P, "identity": "a", "conference": "b", "content": {}}, TARGET, {}),
    ({"call_sid": "CA123", "content": {}}, "call_sid must be CA followed by 32 hex digits.",
     {"field": "call_sid"}),
    ({"call_sid": 7, "content": {}}, "call_sid must be CA followed by 32 hex digits.",
     {"field": "call_sid"}),
    ({"identity": "", "content": {}}, "identity must be a non-empty string.",
     {"field": "identity"}),
    ({"identity": "  ", "content": {}}, "identity must be a non-empty string.",
     {"field": "identity"}),
    ({"identity": ["a"], "content": {}}, "identity must be a non-empty string.",
     {"field": "identity"}),
    ({"identity": "a\ud800", "content": {}},
     "identity must be Unicode text (it holds a lone surrogate).", {"field": "identity"}),
    ({"call_sid": P, "leg": "both", "content": {}}, "leg must be one of sdk, parent, child.",
     {"field": "leg"}),
    ({"call_sid": P, "leg": None, "content": {}}, "leg must be one of sdk, parent, child.",
     {"field": "leg"}),
    ({"identity": "a", "leg": "sdk", "content": {}},
     "leg applies to call_sid only; an identity or a conference names SDK legs.",
     {"field": "leg"}),
    ({"conference": "standup", "leg": "parent", "content": {}},
     "leg applies to call_sid only; an identity or a conference names SDK legs.",
     {"field": "leg"}),
    ({"call_sid": P, "content": {}, "idempotency_key": 5}, *KEY),
    ({"call_sid": P, "content": {}, "idempotency_key": ""}, *KEY),
    ({"call_sid": P, "content": {}, "idempotency_key": "k" * 256}, *KEY),
    ({"call_sid": P, "content": {}, "idempotency_key": "k\udc00"}, *KEY),
    ({"call_sid": P}, "content is required: any JSON value.", {"field": "content"}),
    ({"call_sid": P, "content": "not json"},
     "content is a string that does not hold JSON; send a JSON value, or a string "
     "containing JSON.", {"field": "content"}),
    ({"call_sid": P, "content": "\ud800"},
     "content must be strict JSON (RFC 8259): it holds a lone surrogate (not Unicode text).",
     {"field": "content"}),
])
def test_refused_bodies(body, message, details):
    with pytest.raises(ValidationFailed) as refused:
        parse_request(body)
    assert (refused.value.message, refused.value.details) == (message, details)


def test_a_bad_conference_name_is_refused_as_the_conference_field():
    with pytest.raises(ValidationFailed) as refused:
        parse_request({"conference": " x", "content": {}})
    assert refused.value.details == {"field": "conference"}


@pytest.mark.parametrize("content", ["NaN", '{"a": Infinity}', float("nan"), [float("inf")]])
def test_content_must_be_strict_json(content):
    with pytest.raises(ValidationFailed) as refused:
        parse_request({"call_sid": P, "content": content})
    assert refused.value.message.startswith("content must be strict JSON (RFC 8259): ")
    assert refused.value.message.endswith(".")
    assert refused.value.details == {"field": "content"}


def test_content_over_the_limit_says_how_long_it_is():
    with pytest.raises(ContentTooLarge) as refused:
        parse_request({"call_sid": P, "content": ["x" * 10_000]})
    assert refused.value.message == ("content is 10004 characters once serialized; Twilio "
                                     "accepts at most 10000.")
    assert refused.value.details == {"limit": 10_000, "length": 10_004}


# --- which leg of a call gets the message ---------------------------------------------------

def leg(sid: str, status: str, *, parent: str | None = None, identity: str | None = None,
        updated_at: float = 1.0) -> Leg:
    return Leg(call_sid=sid, status=status, parent_sid=parent, identity=identity,
               updated_at=updated_at)


SDK_PARENT = leg(P, "in-progress", identity="alice")
PHONE_PARENT = leg(P, "in-progress")
SDK_CHILD = leg(C1, "in-progress", parent=P, identity="bob")
PHONE_CHILD = leg(C1, "in-progress", parent=P)
RINGING_CHILD = leg(C2, "ringing", parent=P, identity="carol")
ENDED_CHILD = leg(C2, "no-answer", parent=P, identity="carol")


@pytest.mark.parametrize(("legs", "given", "which", "expected"), [
    # leg=sdk: the given leg when an SDK sits on it, else the call's one SDK leg.
    ([SDK_PARENT, PHONE_CHILD], SDK_PARENT, "sdk", SDK_PARENT),
    ([SDK_PARENT, PHONE_CHILD], PHONE_CHILD, "sdk", SDK_PARENT),
    ([PHONE_PARENT, SDK_CHILD], PHONE_PARENT, "sdk", SDK_CHILD),
    ([SDK_PARENT, SDK_CHILD], SDK_CHILD, "sdk", SDK_CHILD),
    ([PHONE_PARENT, SDK_CHILD, ENDED_CHILD], PHONE_PARENT, "sdk", SDK_CHILD),
    # leg=parent / leg=child: that leg, whoever sits on it.
    ([PHONE_PARENT, SDK_CHILD], SDK_CHILD, "parent", PHONE_PARENT),
    ([SDK_PARENT, PHONE_CHILD], SDK_PARENT, "child", PHONE_CHILD),
    ([SDK_PARENT, PHONE_CHILD, ENDED_CHILD], SDK_PARENT, "child", PHONE_CHILD),
])
def test_the_leg_that_gets_the_message(legs, given, which, expected):
    assert resolve_call_target(legs, given, which) == expected


def refusal(legs: list[Leg], given: Leg, which: str) -> RelayError:
    with pytest.raises(RelayError) as refused:
        resolve_call_target(legs, given, which)
    return refused.value


def test_no_parent_seen():
    error = refusal([SDK_CHILD], SDK_CHILD, "parent")
    assert (type(error), error.message, error.details) == (
        NoSuchLeg, "callrelay has not seen this call's parent leg.", {"parent_call_sid": P})


def test_no_child_yet():
    error = refusal([SDK_PARENT], SDK_PARENT, "child")
    assert (type(error), error.message, error.details) == (
        NoSuchLeg, "This call has no child leg (yet).", {"call_sid": P})


def test_no_sdk_on_any_leg():
    error = refusal([PHONE_PARENT, PHONE_CHILD], PHONE_PARENT, "sdk")
    assert type(error) is NoSuchLeg
    assert error.message == ("No Voice SDK client sits on any leg of this call; pass "
                             "leg=parent or leg=child to send to a leg explicitly.")
    assert error.details == {"legs": [PHONE_PARENT.to_json(), PHONE_CHILD.to_json()]}


def test_the_one_sdk_leg_is_not_live():
    error = refusal([PHONE_PARENT, ENDED_CHILD], PHONE_PARENT, "sdk")
    assert type(error) is LegNotLive
    assert error.message == ("The SDK leg is no-answer; Twilio accepts messages only while a "
                             "leg is ringing or in-progress.")
    assert error.details == {"leg": ENDED_CHILD.to_json()}


def test_none_of_several_legs_is_live():
    other = leg(C1, "completed", parent=P)
    error = refusal([PHONE_PARENT, other, ENDED_CHILD], PHONE_PARENT, "child")
    assert (type(error), error.message) == (LegNotLive, "None of the child legs is live.")
    assert error.details == {"candidates": [other.to_json(), ENDED_CHILD.to_json()]}


def test_several_live_legs_are_ambiguous():
    error = refusal([PHONE_PARENT, SDK_CHILD, RINGING_CHILD], PHONE_PARENT, "sdk")
    assert type(error) is AmbiguousTarget
    assert error.message == "Several live SDK legs match; name one by its call_sid."
    assert error.details == {"candidates": [SDK_CHILD.to_json(), RINGING_CHILD.to_json()]}


def test_the_sdk_leg_given_is_not_live():
    error = refusal([leg(P, "completed", identity="alice"), PHONE_CHILD],
                    leg(P, "completed", identity="alice"), "sdk")
    assert type(error) is LegNotLive
    assert error.message == ("The SDK leg is completed; Twilio accepts messages only while a "
                             "leg is ringing or in-progress.")


def test_the_parent_leg_is_not_live():
    ended = leg(P, "completed")
    error = refusal([ended, SDK_CHILD], SDK_CHILD, "parent")
    assert type(error) is LegNotLive
    assert error.message == ("The parent leg is completed; Twilio accepts messages only while "
                             "a leg is ringing or in-progress.")
    assert error.details == {"leg": ended.to_json()}
