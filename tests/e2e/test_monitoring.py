"""What a monitoring system sees of a Procfile-started callrelay (3 workers: /metrics sums them):
its /metrics matches docs/operations.md's list, and a real Prometheus scraping it finds every
metric the alert rules and the dashboard read, loads the rules and fires the one that is due."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.calls import Step, sdk_calls_phone
from sandbox.devtools import free_port
from sandbox.twilio_mock import TwilioMock
from tests.e2e.harness import Service
from tests.forwarding.support import SECRET, Backend, sdk_message
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign
from tests.support.monitoring import (
    PrometheusServer,
    alert_rules,
    dashboard_queries,
    documented_metrics,
    metric_names,
    runnable,
)

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}
# The share of webhooks answered 5xx: no traffic here fails a webhook, so it has no series.
MAY_BE_EMPTY = {'sum(rate(callrelay_webhooks_total{job="callrelay", instance=~".*", '
                'outcome=~"5.."}[1m])) / sum(rate(callrelay_webhooks_total{job="callrelay", '
                'instance=~".*"}[1m]))'}


def wait_for(what: str, condition: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """Poll until `condition()` is truthy; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def scraped(url: str) -> dict[str, Any]:
    """The families of one scrape of /metrics, by name."""
    text = requests.get(url + "/metrics", timeout=10).text
    return {family.name: family for family in text_string_to_metric_families(text)}


def sample(families: dict[str, Any], family: str, name: str) -> float:
    return sum(s.value for s in families[family].samples if s.name == name) \
        if family in families else 0.0


def play_traffic(service: Service, twilio: TwilioMock, backend: Backend) -> None:
    """A little of everything the metrics count: webhooks (one forged), a refused dial,
    /notify sent and failed, Twilio retrying a 429, SDK messages delivered and dead."""
    http = requests.Session()

    def webhook(step: Step, signature: str | None = None) -> int:
        url = service.url + step.path
        sig = sign(url, step.params) if signature is None else signature
        return http.post(url, data=step.params, timeout=10,
                         headers={"X-Twilio-Signature": sig}).status_code

    call = sdk_calls_phone(ACCOUNT_SID, identity="alice")
    assert [webhook(step) for step in call.answer] == [200, 204, 204, 204]
    assert webhook(call.hangup[0], signature="Zm9yZ2Vk") == 403
    refused = sdk_calls_phone(ACCOUNT_SID, identity="mallory", number="+19005550100")
    assert webhook(refused.answer[0]) == 200  # TwiML that says no and hangs up

    def notify(body: dict[str, Any]) -> int:
        return http.post(service.url + "/notify", json=body, headers=AUTH, timeout=20
                         ).status_code

    assert notify({"identity": "alice", "content": {"n": 1}}) == 201
    twilio.fail_next(1, 429)
    assert notify({"identity": "alice", "content": {"n": 2}}) == 201
    assert notify({"identity": "nobody", "content": {}}) == 404

    backend.answer = lambda d: 500 if b'"refuse"' in d.body else 204
    for content in ({"keep": 1}, {"refuse": 1}):
        body = json.dumps(sdk_message(call.sdk_sid, content)).encode()
        url = f"{service.url}/twilio/messages?bodySHA256={hashlib.sha256(body).hexdigest()}"
        answer = http.post(url, data=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Twilio-Signature": sign(url, {})})
        assert answer.status_code == 204

    def forwarded() -> bool:
        families = scraped(service.url)
        return sample(families, "callrelay_forward_delivered",
                      "callrelay_forward_delivered_total") >= 1 and \
            sample(families, "callrelay_forward_dead", "callrelay_forward_dead_total") >= 1

    wait_for("a delivered and a dead event", forwarded)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, twilio_server: TwilioMock
            ) -> Iterator[Service]:
    """callrelay under gunicorn, forwarding to a backend, after some traffic."""
    tmp = tmp_path_factory.mktemp("monitoring")
    twilio_server.reset()
    backend = Backend()
    port = free_port()
    env = make_env(tmp, twilio_server, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   FORWARD_URL=backend.url, FORWARD_SECRET=SECRET, FORWARD_MAX_ATTEMPTS="1")
    try:
        with Service(env, workers=3, port=port, log_path=tmp / "callrelay.log") as running:
            play_traffic(running, twilio_server, backend)
            yield running
    finally:
        backend.stop()


def test_docs_list_every_metric_served_with_its_labels(service):
    served: dict[str, tuple[str, frozenset[str]]] = {}
    for family in scraped(service.url).values():
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = frozenset(label for s in family.samples for label in s.labels) - {"le"}
        served[name] = (family.type, labels)
    documented = {name: (kind, labels) for name, (kind, labels) in documented_metrics().items()}
    assert served == documented


def test_prometheus_finds_every_metric_the_rules_and_dashboard_read(service, tmp_path: Path):
    with PrometheusServer(f"127.0.0.1:{service.port}", tmp_path) as prometheus:
        def query(expr: str) -> list[dict[str, Any]]:
            return list(prometheus.api("query", query=expr)["result"])

        # Two scrapes since the traffic, so that rates have something to compare.
        wait_for("two scrapes after the traffic", lambda: query(
            'count_over_time(callrelay_forward_dead_total{job="callrelay"}[1m]) >= 2'))
        assert [r["value"][1] for r in query('up{job="callrelay"}')] == ["1"]

        names = set(prometheus.api("label/__name__/values"))
        read = {name for rule in alert_rules() for name in metric_names(rule["expr"])}
        read |= {name for q in dashboard_queries() for name in metric_names(q)}
        assert read - names == set()

        for expr in map(runnable, dashboard_queries()):
            assert query(expr) or expr in MAY_BE_EMPTY, expr

        # The rules load, and every one of them evaluates without an error.
        def evaluated() -> list[dict[str, Any]]:
            rules = [rule for group in prometheus.api("rules")["groups"]
                     for rule in group["rules"]]
            return rules if all(r["health"] != "unknown" for r in rules) else []

        rules = wait_for("every rule evaluated", evaluated)
        assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in alert_rules())
        assert [(r["name"], r["health"], r.get("lastError")) for r in rules
                if r["health"] != "ok"] == []

        # The dead event is due now: its alert fires; nothing else has been going on for long.
        def firing() -> set[str]:
            return {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"]
                    if a["state"] == "firing"}

        assert wait_for("the dead-letter alert", firing) == {"CallrelayDeadLetters"}
