"""The review's reproductions: random call SIDs and identities cost a bounded number of Twilio
requests, and while Twilio answers 429 /notify answers 503 at once.

LOOKUP_BUDGET=0.01,8: a burst of 8 requests, then one every 100 s, so that the test's own
running time refills nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid, sdk_calls_phone
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.relay import Relay


@pytest.fixture
def budget_app(tmp_path, twilio) -> Iterator[Flask]:
    app = create_app(Settings.from_env(make_env(tmp_path, twilio, LOOKUP_BUDGET="0.01,8")))
    yield app
    app.extensions["callrelay.store"].close()


@pytest.fixture
def relay(budget_app: Flask) -> Relay:
    return Relay(budget_app.test_client())


def metric(relay: Relay, name: str, **labels: str) -> float:
    text = relay.client.get("/metrics").get_data(as_text=True)
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name
               and all(s.labels.get(k) == v for k, v in labels.items()))


def gets(twilio) -> int:
    return sum(r.method == "GET" for r in twilio.requests)


def test_random_call_sids_cost_at_most_the_burst(relay, twilio):
    answers = [relay.notify({"call_sid": new_call_sid(), "content": {}}) for _ in range(20)]
    assert [a.status_code for a in answers] == [404] * 8 + [503] * 12
    refused = answers[-1]
    assert refused.json["error"]["code"] == "lookup_budget_exhausted"
    assert 1 <= int(refused.headers["Retry-After"]) <= 100
    assert gets(twilio) == 8
    assert metric(relay, "callrelay_lookups_total", kind="call", outcome="unknown") == 8
    assert metric(relay, "callrelay_lookups_refused_total", kind="call", reason="rate") == 12
    # A call callrelay knows needs no lookup: sending to it is not held back by the budget.
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert relay.notify({"call_sid": call.parent_sid, "content": {}}).status_code == 201


def test_random_identities_cost_four_listings_each_within_the_burst(relay, twilio):
    answers = [relay.notify({"identity": f"user{n}", "content": {}}) for n in range(6)]
    assert [a.status_code for a in answers] == [404, 404, 503, 503, 503, 503]
    assert {a.json["error"]["code"] for a in answers[2:]} == {"lookup_budget_exhausted"}
    assert gets(twilio) == 8
    assert metric(relay, "callrelay_lookups_refused_total", kind="client") == 4
    # The negative answers stand: asking again costs nothing and is not refused.
    assert relay.notify({"identity": "user0", "content": {}}).status_code == 404
    assert metric(relay, "callrelay_lookups_total", kind="client", outcome="cached") == 1
    assert gets(twilio) == 8


def test_while_twilio_answers_429_notify_answers_503_at_once(relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    twilio.fail_next(1000, 429, retry_after=60)  # longer than the deadline: no retry
    for _ in range(3):
        answer = relay.notify({"call_sid": call.parent_sid, "content": {}})
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert len(twilio.requests) == 3
    # Three 429s in a row: the breaker is open, for Twilio's Retry-After.
    for body in ({"call_sid": call.parent_sid, "content": {}},
                 {"call_sid": new_call_sid(), "content": {}},
                 {"identity": "nobody", "content": {}}):
        answer = relay.notify(body)
        assert answer.status_code == 503, answer.json
        assert answer.json["error"]["code"] == "twilio_unavailable"
        assert 30 <= int(answer.headers["Retry-After"]) <= 60
    assert len(twilio.requests) == 3
    assert metric(relay, "callrelay_twilio_breaker_opened_total") == 1
    assert metric(relay, "callrelay_twilio_breaker_open_until_seconds") > time.time()
