"""Forwarding as /metrics shows it: deliveries, failed attempts by reason, dead events, and the
backlog read from the store (the same from every worker sharing it)."""

from __future__ import annotations

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import free_port
from tests.forwarding.support import post_json, sdk_message, wait_until
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay


def metric(app: Flask, name: str, **labels: str) -> float | None:
    """The value of one sample of the app's /metrics, or None when it is not served."""
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 200
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def send(relay: Relay, call_sid: str, n: int) -> None:
    assert post_json(relay.client, sdk_message(call_sid, {"n": n}, seq=n)).status_code == 204


def test_deliveries_failed_attempts_and_dead_events_are_counted(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="3")
    relay = Relay(app.test_client())
    backend.answer = lambda d: 500 if b'"content":{"n":1}' in d.body else 204
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    for n in (1, 2, 3):
        send(relay, call.sdk_sid, n)
    backend.wait_accepted(2)
    wait_until(lambda: metric(app, "callrelay_forward_delivered_total") == 2)
    assert metric(app, "callrelay_forward_failed_total", reason="http_5xx") == 3
    for reason in ("http_3xx", "http_4xx", "timeout", "connection", "other"):
        assert metric(app, "callrelay_forward_failed_total", reason=reason) == 0
    assert metric(app, "callrelay_forward_dead_total") == 1
    assert metric(app, "callrelay_forward_attempt_duration_seconds_count") == 5
    assert metric(app, "callrelay_outbox_pending") == 0
    assert metric(app, "callrelay_outbox_dead") == 1


def test_an_unreachable_backend_is_a_connection_failure(make_app):
    app = make_app(FORWARD_URL=f"http://127.0.0.1:{free_port()}/hooks")
    relay = Relay(app.test_client())
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))
    send(relay, call.sdk_sid, 1)
    wait_until(lambda: (metric(app, "callrelay_forward_failed_total",
                               reason="connection") or 0) >= 1)
    assert metric(app, "callrelay_forward_delivered_total") == 0
    assert metric(app, "callrelay_outbox_pending") == 1


def test_the_backlog_is_read_from_the_store_and_agrees_across_workers(make_app, backend):
    backend.answer = lambda d: 503
    worker, other_worker = make_app(), make_app()  # two processes on one store
    relay = Relay(worker.test_client())
    alice = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    bob = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    send(relay, alice.sdk_sid, 1)
    send(relay, alice.sdk_sid, 2)
    send(relay, bob.sdk_sid, 1)
    backend.wait_for(lambda ds: len(ds) >= 4)  # failing, and retried: still pending
    assert metric(worker, "callrelay_outbox_pending") == 3
    assert metric(other_worker, "callrelay_outbox_pending") == 3
    backend.answer = lambda d: 204
    backend.wait_accepted(3)
    wait_until(lambda: metric(other_worker, "callrelay_outbox_pending") == 0)
    assert metric(worker, "callrelay_outbox_pending") == 0
    assert metric(worker, "callrelay_outbox_dead") == metric(other_worker,
                                                              "callrelay_outbox_dead") == 0
    # Each process counts its own deliveries (gunicorn's workers' are summed): three in all.
    wait_until(lambda: sum(metric(app, "callrelay_forward_delivered_total") or 0
                           for app in (worker, other_worker)) == 3)
