"""GET /metrics in-process: counters by route and outcome, Twilio latency, retries, live legs."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import free_port
from services.observability.metrics import observed, twilio_endpoint
from tests.forwarding.support import FAST, SECRET, stop_app, wait_until
from tests.support.env import ACCOUNT_SID, make_env


def scrape(client) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, keyed by name and labels."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for s in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_webhooks_and_notifies_are_counted_by_route_and_outcome(relay, client, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert relay.webhook(call.hangup[0].path, call.hangup[0].params,
                         signature="bm9wZQ==").status_code == 403
    assert relay.notify({"call_sid": call.parent_sid, "content": {"n": 1}}).status_code == 201
    assert relay.notify({"call_sid": "CAnope", "content": {}}).status_code == 422
    assert relay.notify({"identity": "nobody", "content": {}}).status_code == 404
    assert relay.notify({"identity": "alice", "content": {}}, token="x" * 20).status_code == 401
    m = scrape(client)
    assert value(m, "callrelay_webhooks_total", route="/twilio/voice", outcome="200") == 1
    assert value(m, "callrelay_webhooks_total", route="/twilio/status", outcome="204") == 3
    assert value(m, "callrelay_webhooks_total", route="/twilio/status", outcome="403") == 1
    assert value(m, "callrelay_notify_total", outcome="sent", twilio_code="") == 1
    assert value(m, "callrelay_notify_total", outcome="validation_failed", twilio_code="") == 1
    assert value(m, "callrelay_notify_total", outcome="identity_not_found", twilio_code="") == 1
    assert value(m, "callrelay_notify_total", outcome="unauthorized", twilio_code="") == 1
    assert value(m, "callrelay_http_requests_total", route="/notify", method="POST",
                 status="201") == 1


def test_twilio_refusals_carry_twilio_code_and_latency_is_observed(relay, client, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    twilio.set_call(call.child_sid, "completed")  # Twilio knows the call ended; callrelay not yet
    answer = relay.notify({"call_sid": call.child_sid, "content": {}})
    assert answer.status_code == 502 and answer.json["error"]["twilio_code"] == 21220
    m = scrape(client)
    assert value(m, "callrelay_notify_total", outcome="twilio_refused", twilio_code="21220") == 1
    endpoint = "POST Calls/{sid}/UserDefinedMessages.json"
    assert value(m, "callrelay_twilio_request_duration_seconds_count", endpoint=endpoint,
                 outcome="400") == 1


def test_retries_are_counted(relay, client, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    twilio.fail_next(2, 503)
    assert relay.notify({"call_sid": call.parent_sid, "content": {}}).status_code == 201
    m = scrape(client)
    assert value(m, "callrelay_twilio_retries_total", reason="503") == 2
    endpoint = "POST Calls/{sid}/UserDefinedMessages.json"
    assert value(m, "callrelay_twilio_request_duration_seconds_count", endpoint=endpoint,
                 outcome="503") == 2
    assert value(m, "callrelay_twilio_request_duration_seconds_count", endpoint=endpoint,
                 outcome="201") == 1


def test_live_legs_are_computed_from_the_store_at_scrape_time(relay, client):
    outgoing = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    relay.answered(phone_calls_sdk(ACCOUNT_SID))
    m = scrape(client)
    assert value(m, "callrelay_store_up") == 1
    assert value(m, "callrelay_live_legs", sdk="true") == 2
    assert value(m, "callrelay_live_legs", sdk="false") == 2
    assert value(m, "callrelay_open_calls") == 2
    relay.play(outgoing.hangup)
    m = scrape(client)
    assert value(m, "callrelay_live_legs", sdk="true") == 1
    assert value(m, "callrelay_open_calls") == 1


def test_metrics_need_no_auth_and_each_app_counts_alone(app, client):
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 200
    # The first scrape is counted once answered; other tests' apps counted in their own registry.
    assert value(scrape(client), "callrelay_http_requests_total", route="/metrics",
                 method="GET", status="200") == 1


def test_twilio_endpoint_labels_have_no_sids():
    url = (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA"
           + "a" * 32 + "/UserDefinedMessageSubscriptions/ZY" + "b" * 32 + ".json")
    assert twilio_endpoint("delete", url) == "DELETE Calls/{sid}/UserDefinedMessageSubscriptions/{sid}.json"
    assert twilio_endpoint("GET", f"http://127.0.0.1:4010/2010-04-01/Accounts/{ACCOUNT_SID}"
                           "/Calls.json?ParentCallSid=CA" + "c" * 32) == "GET Calls.json"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.seconds: list[float] = []

    def twilio_request(self, method: str, url: str, outcome: str, seconds: float) -> None:
        self.seen.append((method, url, outcome))
        self.seconds.append(seconds)

    def twilio_retry(self, reason: str) -> None:
        raise AssertionError("not a retry")


def test_observed_reports_status_timeout_and_connection_failures():
    recorder = Recorder()
    spans = []  # (before, after) each call, read here: the time reported must lie within
    before = time.monotonic()
    assert observed(recorder, "POST", "u", lambda: SimpleNamespace(status_code=201)).status_code == 201
    spans.append((before, time.monotonic()))
    for exc in (requests.Timeout(), requests.ConnectionError()):
        def fail(exc=exc):
            raise exc
        before = time.monotonic()
        with pytest.raises(type(exc)):
            observed(recorder, "GET", "u", fail)
        spans.append((before, time.monotonic()))
    assert [o for _, _, o in recorder.seen] == ["201", "timeout", "connection"]
    assert [(m, u) for m, u, _ in recorder.seen] == [("POST", "u"), ("GET", "u"), ("GET", "u")]
    # What each request took: not a start time, not negative, not more than the call itself.
    for seconds, (start, end) in zip(recorder.seconds, spans, strict=True):
        assert 0 <= seconds <= end - start
    assert observed(None, "GET", "u", lambda: 7) == 7


def test_a_store_that_does_not_answer_is_counted_and_hides_the_backlog(tmp_path, twilio):
    down = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    env = make_env(tmp_path, twilio, STORE_URL=down, FORWARD_URL="http://127.0.0.1:9/hooks",
                   FORWARD_SECRET=SECRET)
    app = create_app(Settings.from_env(env), forwarding=FAST)
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 503
        # The delivery thread finds the outbox unreachable too, and says so.
        wait_until(lambda: value(scrape(client), "callrelay_store_errors_total",
                                 source="forwarding") >= 1)
        m = scrape(client)
    finally:
        stop_app(app)
    assert value(m, "callrelay_store_up") == 0
    assert value(m, "callrelay_store_errors_total", source="request") == 1
    assert value(m, "callrelay_store_errors_total", source="other") == 0
    assert ("callrelay_store_errors_total", frozenset({("source", "other")})) in m
    assert not [name for name, _ in m if name.startswith("callrelay_outbox_")]


def test_the_backlog_is_served_while_the_store_answers(client):
    m = scrape(client)
    assert value(m, "callrelay_outbox_pending") == 0 and value(m, "callrelay_outbox_dead") == 0
    assert ("callrelay_outbox_pending", frozenset()) in m


def test_workers_serving_and_configured(tmp_path, twilio):
    app = create_app(Settings.from_env(make_env(tmp_path, twilio, WEB_CONCURRENCY="3")))
    try:
        m = scrape(app.test_client())
    finally:
        app.extensions["callrelay.store"].close()
    assert value(m, "callrelay_workers") == 1  # this process; gunicorn's workers are summed
    assert value(m, "callrelay_workers_configured") == 3
