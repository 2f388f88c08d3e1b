"""/metrics under gunicorn with 3 workers: the counters sum whichever worker served a request,
and the workers serving are counted (the master counts those that exit)."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.calls import Step, sdk_calls_phone
from sandbox.devtools import free_port
from tests.e2e.harness import Service
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign

pytestmark = pytest.mark.e2e
CALLS = 12  # 4 webhooks each to answer
NOTIFIES_PER_CALL = 3


def total(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    text = requests.get(url + "/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == name and labels.items() <= s.labels.items())


def test_counters_sum_over_workers_and_survive_a_dead_worker(tmp_path, twilio):
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"))
    calls = [sdk_calls_phone(ACCOUNT_SID, identity=f"user{i}") for i in range(CALLS)]
    with Service(env, workers=3, port=port, log_path=tmp_path / "callrelay.log") as service:
        def webhook(step: Step) -> int:
            url = service.url + step.path
            return requests.post(url, data=step.params, timeout=10,
                                 headers={"X-Twilio-Signature": sign(url, step.params)},
                                 ).status_code

        def notify(i: int) -> int:
            return requests.post(service.url + "/notify", timeout=20,
                                 headers={"Authorization": f"Bearer {RELAY_TOKEN}"},
                                 json={"identity": f"user{i % CALLS}", "content": {"i": i}},
                                 ).status_code

        with ThreadPoolExecutor(9) as pool:
            # Separate connections, many at once: every worker serves some.
            for call in calls:
                assert list(pool.map(webhook, call.answer[:1])) == [200]
            children = [step for call in calls for step in call.answer[1:]]
            assert set(pool.map(webhook, children)) == {204}
            sent = list(pool.map(notify, range(CALLS * NOTIFIES_PER_CALL)))
            assert set(sent) == {201}
            webhooks, notifies = CALLS * len(calls[0].answer), CALLS * NOTIFIES_PER_CALL

            def writers() -> set[str]:
                return {f.split("_")[-1] for f in os.listdir(tmp_path / "metrics")
                        if f.startswith("counter_")}

            # On a loaded machine one worker may have accepted every connection: replay
            # (harmless, duplicate) callbacks until a second worker has counted some.
            for _ in range(20):
                if len(writers()) >= 2:
                    break
                assert set(pool.map(webhook, children)) == {204}
                webhooks += len(children)
        assert len(writers()) >= 2, writers()  # several workers counted

        def check() -> None:
            assert total(service.url, "callrelay_webhooks_total") == webhooks
            assert total(service.url, "callrelay_webhooks_total", route="/twilio/status",
                         outcome="204") == webhooks - CALLS
            assert total(service.url, "callrelay_notify_total", outcome="sent") == notifies
            assert total(service.url, "callrelay_twilio_request_duration_seconds_count",
                         outcome="201") == notifies
            assert total(service.url, "callrelay_live_legs") == 2 * CALLS

        check()
        assert total(service.url, "callrelay_workers") == 3
        assert total(service.url, "callrelay_workers_configured") == 3
        assert total(service.url, "callrelay_worker_exits_total") == 0
        victim = service.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while (victim in service.worker_pids() or len(service.worker_pids()) < 3) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        check()  # the dead worker's counts are still in the sums
        assert total(service.url, "callrelay_worker_exits_total") == 1  # counted by the master
        # The replacement worker counts itself once it has booted; the dead one is forgotten.
        while total(service.url, "callrelay_workers") != 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert total(service.url, "callrelay_workers") == 3
