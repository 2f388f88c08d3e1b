"""/notify by identity after a restart lost the registry: Twilio's Calls API is asked first."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid
from services.legs.rules import Retention
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from tests.support.relay import Relay


def client_lookups(twilio: Any) -> list[tuple[str, str]]:
    """The Calls listings that asked about a client: (filter, status) pairs."""
    return [(f"{field}={r.query[field]}", r.query.get("Status", ""))
            for r in twilio.requests if r.path.endswith("/Calls.json")
            for field in ("To", "From") if r.query.get(field, "").startswith("client:")]


def sdk_called_out_before_the_restart(twilio: Any, identity: str) -> tuple[str, str]:
    """A live call the Voice SDK placed (its leg is the parent), unknown to callrelay."""
    parent, child = new_call_sid(), new_call_sid()
    twilio.set_call(parent, "in-progress", from_=f"client:{identity}", to="+15550001111",
                    direction="inbound")
    twilio.set_call(child, "in-progress", parent_call_sid=parent, from_=f"client:{identity}",
                    to="+15550001111", direction="outbound-dial")
    return parent, child


def phone_called_the_sdk_before_the_restart(twilio: Any, identity: str) -> tuple[str, str]:
    """A live call a phone placed to the Voice SDK (its leg is the child), unknown to callrelay."""
    parent, child = new_call_sid(), new_call_sid()
    twilio.set_call(parent, "in-progress", from_="+15550002222", to="+15005550001",
                    direction="inbound")
    twilio.set_call(child, "ringing", parent_call_sid=parent, from_="+15550002222",
                    to=f"client:{identity}", direction="outbound-dial")
    return parent, child


@pytest.mark.parametrize("scenario, sdk_leg", [
    (sdk_called_out_before_the_restart, 0), (phone_called_the_sdk_before_the_restart, 1)])
def test_a_live_call_the_registry_lost_is_found_at_twilio(relay, twilio, scenario, sdk_leg):
    # `relay` runs on an empty SQLite file: a restart on Heroku/Render lost the registry.
    legs = scenario(twilio, "alice")
    answer = relay.notify({"identity": "alice", "content": {"hi": 1}})
    assert answer.status_code == 201, answer.json
    assert [m.call_sid for m in twilio.messages] == [legs[sdk_leg]]
    assert answer.json["messages"][0]["identity"] == "alice"
    assert sorted(client_lookups(twilio)) == sorted(
        (f"{field}=client:alice", status) for field in ("To", "From")
        for status in ("ringing", "in-progress"))
    # What was found is recorded: the call reads back, and the next message needs no lookup.
    found = relay.get(f"/calls/{legs[sdk_leg]}").json
    assert {leg["call_sid"]: leg["identity"] for leg in found["legs"]}[legs[sdk_leg]] == "alice"
    before = len(twilio.requests)
    assert relay.notify({"identity": "alice", "content": 2}).status_code == 201
    assert [r.method for r in twilio.requests[before:]] == ["POST"]


def test_an_identity_twilio_does_not_know_is_404_and_not_asked_again_soon(relay, twilio):
    for _ in range(3):
        answer = relay.notify({"identity": "nobody", "content": {}})
        assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"
    assert len(client_lookups(twilio)) == 4  # one set of listings, then the negative cache
    assert twilio.messages == []


def test_twilio_failing_during_the_lookup_is_an_error_not_404(relay, twilio):
    twilio.fail_next(100_000, status=503)
    answer = relay.notify({"identity": "alice", "content": {}})
    # A failed page of the Calls list is retried like any request: Twilio is unavailable.
    assert (answer.status_code, answer.json["error"]["code"]) == (503, "twilio_unavailable")
    asked = len(twilio.requests)
    twilio.reset()
    sdk_called_out_before_the_restart(twilio, "alice")
    # Remembered briefly (reconcile.ERROR_CACHE_S; tests/unit/test_reconciler.py moves the
    # clock past it): the same error again, and Twilio is not asked meanwhile.
    again = relay.notify({"identity": "alice", "content": {}})
    assert (again.status_code, again.json["error"]["code"]) == (
        answer.status_code, answer.json["error"]["code"])
    assert asked > 0 and twilio.requests == []


def test_a_registry_older_than_the_longest_call_is_not_second_guessed(settings: Settings,
                                                                     twilio):
    # The registry has been recording for 5 hours (MAX_CALL_DURATION_S is 4): it would have
    # seen any live call begin, so an identity it does not know has none.
    path = settings.store_url.removeprefix("sqlite:///")
    five_hours_ago = time.time() - 5 * 3600
    SQLiteStore(SQLiteDatabase(path), Retention(), clock=lambda: five_hours_ago).close()
    sdk_called_out_before_the_restart(twilio, "alice")  # even Twilio knowing one changes nothing
    app = create_app(settings)
    try:
        answer = Relay(app.test_client()).notify({"identity": "alice", "content": {}})
    finally:
        app.extensions["callrelay.store"].close()
    assert answer.status_code == 404 and answer.json["error"]["code"] == "identity_not_found"
    assert twilio.requests == []


@pytest.mark.parametrize("known", [False, True], ids=["unknown", "live-at-twilio"])
def test_parallel_requests_for_one_identity_share_one_lookup(app, twilio, known):
    if known:
        sdk_called_out_before_the_restart(twilio, "zoe")
    twilio.delay = 0.2  # every request to Twilio is slow: the /notify requests overlap

    def notify(_: int) -> int:
        return Relay(app.test_client()).notify({"identity": "zoe", "content": {}}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(notify, range(8)))
    twilio.delay = 0
    assert statuses == [201 if known else 404] * 8
    assert len(client_lookups(twilio)) == 4
