"""GET /calls: filters by identity and status, pages with an opaque cursor, clear 422s."""

import pytest

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from tests.support.env import ACCOUNT_SID


def listed(relay, query=""):
    answer = relay.get(f"/calls{query}")
    assert answer.status_code == 200, answer.json
    return answer.json


def sids(page):
    return [call["call_sid"] for call in page["calls"]]


def test_every_page_of_calls_once_and_in_order(relay):
    calls = [relay.answered(sdk_calls_phone(ACCOUNT_SID, identity=f"user{i}")) for i in range(5)]
    expected = sorted(call.parent_sid for call in calls)
    first = listed(relay, "?limit=2")
    assert sids(first) == expected[:2] and first["next_cursor"]
    second = listed(relay, f"?limit=2&cursor={first['next_cursor']}")
    assert sids(second) == expected[2:4] and second["next_cursor"]
    last = listed(relay, f"?limit=2&cursor={second['next_cursor']}")
    assert sids(last) == expected[4:] and last["next_cursor"] is None
    everything = listed(relay)
    assert sids(everything) == expected and everything["next_cursor"] is None


def test_filter_by_identity_and_status(relay):
    alice = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    bob = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    ringing = sdk_calls_phone(ACCOUNT_SID, identity="carol")
    relay.play(ringing.answer[:3])  # the phone rings: not answered yet
    assert sids(listed(relay, "?identity=alice")) == [alice.parent_sid]
    assert sids(listed(relay, "?identity=bob")) == [bob.parent_sid]
    assert sids(listed(relay, "?identity=nobody")) == []
    # The Voice URL request leaves a parent leg ringing (no callback says it was answered);
    # the children that answered are in progress.
    assert sids(listed(relay, "?status=in-progress")) == sorted([alice.parent_sid,
                                                                 bob.parent_sid])
    assert sids(listed(relay, "?status=live")) == sorted(
        [alice.parent_sid, bob.parent_sid, ringing.parent_sid])
    assert sids(listed(relay, "?status=completed")) == []
    # The same leg must match both: carol's own leg rings, the phone's leg is not answered.
    assert sids(listed(relay, "?identity=carol&status=in-progress")) == []
    assert sids(listed(relay, "?identity=carol&status=ringing")) == [ringing.parent_sid]
    assert sids(listed(relay, "?identity=bob&status=in-progress")) == [bob.parent_sid]
    relay.play(bob.hangup)
    assert sids(listed(relay, "?identity=bob")) == []


@pytest.mark.parametrize("query, field", [
    ("?status=dancing", "status"),
    ("?limit=0", "limit"),
    ("?limit=1001", "limit"),
    ("?limit=ten", "limit"),
    ("?limit=-1", "limit"),
    ("?cursor=not-a-cursor", "cursor"),
    ("?cursor=", "cursor"),
    ("?identity=", "identity"),
])
def test_bad_parameters_are_422_naming_the_parameter(relay, query, field):
    answer = relay.get(f"/calls{query}")
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == "validation_failed"
    assert answer.json["error"]["field"] == field


def test_an_unknown_parameter_is_422(relay):
    answer = relay.get("/calls?identiy=alice")
    assert answer.status_code == 422
    assert answer.json["error"]["fields"] == ["identiy"]
