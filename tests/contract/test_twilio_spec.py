"""callrelay's Twilio traffic against Twilio's own OpenAPI description, served by Stoplight Prism.

Every request the real TwilioRestGateway makes goes (through a recording proxy) to Prism, which
validates it against the spec; a request the spec rejects is answered 422 and fails the test.
"""

from __future__ import annotations

import json

import pytest

from services.errors import TwilioRefused
from services.twilio.rest import TwilioRestGateway
from tests.contract.prism import SPEC, RecordingProxy
from tests.support.env import ACCOUNT_SID

pytestmark = pytest.mark.prism

CALL = "CA" + "1" * 32
PARENT = "CA" + "2" * 32
CALLS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"


def _list_example(name: str) -> dict:
    spec = json.loads(SPEC.read_text())
    answer = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Calls.json"]["get"]["responses"]
    return answer["200"]["content"]["application/json"]["examples"][name]["value"]


# Prism answers every Calls list with this example: two calls and a next_page_uri.
FIRST_PAGE = _list_example("readFullPage1")


def calls_lists(proxy: RecordingProxy) -> list:
    return [x for x in proxy.exchanges if x.method == "GET" and ".json?" in x.target
            and x.target.split("?")[0].endswith("/Calls.json")]


def assert_valid(proxy: RecordingProxy) -> None:
    """Prism accepted every request it saw, and reported no violation either way."""
    assert proxy.exchanges, "no request reached Prism"
    assert proxy.violations() == []


def test_message_creation_with_content_and_idempotency_key(
        gateway: TwilioRestGateway, prism: RecordingProxy) -> None:
    sent = gateway.send_message(CALL, '{"type":"hello","text":"caf\u00e9"}', "relay-key-1")
    generated = gateway.send_message(CALL, "[1,2]", None)
    assert sent.sid.startswith("KX") and sent.date_created
    assert generated.sid.startswith("KX")
    first, second = prism.exchanges
    assert (first.method, first.status) == ("POST", 201)
    assert first.target == f"{CALLS}/{CALL}/UserDefinedMessages.json"
    assert first.form == {"Content": '{"type":"hello","text":"caf\u00e9"}',
                          "IdempotencyKey": "relay-key-1"}
    assert second.form["IdempotencyKey"].startswith("callrelay-")
    assert_valid(prism)


def test_subscription_creation(gateway: TwilioRestGateway, prism: RecordingProxy) -> None:
    sid = gateway.subscribe(CALL, "https://relay.example.com/twilio/messages", "sub-key-1")
    assert sid.startswith("ZY")
    [exchange] = prism.exchanges
    assert exchange.target == f"{CALLS}/{CALL}/UserDefinedMessageSubscriptions.json"
    assert exchange.form == {"Callback": "https://relay.example.com/twilio/messages",
                             "Method": "POST", "IdempotencyKey": "sub-key-1"}
    assert exchange.status == 201
    assert_valid(prism)


def test_call_fetch(gateway: TwilioRestGateway, prism: RecordingProxy) -> None:
    event = gateway.fetch_call(CALL)
    assert event is not None and event.call_sid.startswith("CA") and event.status
    [exchange] = prism.exchanges
    assert (exchange.method, exchange.target, exchange.status) == (
        "GET", f"{CALLS}/{CALL}.json", 200)
    assert_valid(prism)


def test_children_list_is_one_page_and_does_not_follow_next_page_uri(
        gateway: TwilioRestGateway, prism: RecordingProxy) -> None:
    legs = gateway.child_calls(PARENT)
    [page] = calls_lists(prism)
    assert page.query == {"ParentCallSid": PARENT, "PageSize": "50"}
    assert page.status == 200
    # Prism's answer (Twilio's example) has a next_page_uri; following it would be wrong twice
    # over: it links back to a page with a next_page_uri forever, and its own StartTime and
    # EndTime (2008-01-02) break the spec's date-time format, so Prism answers it 422.
    assert FIRST_PAGE["next_page_uri"]
    assert [leg.call_sid for leg in legs] == [c["sid"] for c in FIRST_PAGE["calls"]]
    assert legs[0].parent_sid == FIRST_PAGE["calls"][0]["parent_call_sid"]
    assert_valid(prism)


def test_calls_of_a_client_are_four_single_page_listings(gateway: TwilioRestGateway,
                                                         prism: RecordingProxy) -> None:
    calls = gateway.calls_for_client("alice")
    assert len(calls) == 4 * len(FIRST_PAGE["calls"])  # Prism answers each with the example
    pages = calls_lists(prism)
    assert sorted(tuple(sorted(p.query.items())) for p in pages) == sorted(
        tuple(sorted({field: "client:alice", "Status": status, "PageSize": "20"}.items()))
        for field in ("To", "From") for status in ("in-progress", "ringing"))
    assert_valid(prism)


@pytest.mark.parametrize("status", [429, 503])
def test_a_failed_page_is_retried_with_the_same_valid_request(
        gateway: TwilioRestGateway, prism: RecordingProxy, status: int) -> None:
    prism.fail_next(1, status, 20000 + status, "Try again",
                    when=lambda method, target: method == "GET" and "/Calls.json?" in target)
    legs = gateway.child_calls(PARENT)
    assert len(legs) == len(FIRST_PAGE["calls"])
    failed, retried = calls_lists(prism)
    assert (failed.injected, failed.status) == (True, status)
    assert (retried.target, retried.status) == (failed.target, 200)
    assert_valid(prism)


def test_a_refused_page_is_twilio_refused_with_status_and_code(
        gateway: TwilioRestGateway, prism: RecordingProxy) -> None:
    prism.fail_next(1, 400, 20001, "Invalid ParentCallSid",
                    when=lambda method, target: "/Calls.json?" in target)
    with pytest.raises(TwilioRefused) as caught:
        gateway.child_calls(PARENT)
    assert caught.value.details["twilio_status"] == 400
    assert caught.value.details["twilio_code"] == 20001
    assert "Invalid ParentCallSid" in caught.value.message
    assert [(x.status, x.injected) for x in calls_lists(prism)] == [(400, True)]


def test_a_request_the_spec_rejects_is_caught(gateway: TwilioRestGateway,
                                              prism: RecordingProxy) -> None:
    # The harness itself: were callrelay to send what the spec forbids, Prism says so.
    with pytest.raises(TwilioRefused) as caught:
        gateway.subscribe(CALL, "not a url", "sub-key-2")
    assert caught.value.details["twilio_status"] == 422
    [violation] = prism.violations()
    assert "422" in violation and "Callback" in violation
