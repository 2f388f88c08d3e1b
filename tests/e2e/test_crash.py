"""A gunicorn worker killed with SIGKILL mid-burst loses no acknowledged webhook, on SQLite, on
PostgreSQL, and on Redis (one server, a Redis Cluster, a primary behind Sentinel)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sandbox.calls import phone_calls_sdk
from sandbox.devtools import free_port
from tests.e2e.harness import Service
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign
from tests.support.postgres_server import temporary_database
from tests.support.redis_server import redis_server

pytestmark = pytest.mark.e2e
BURST = 600
# How long a third of the burst may take to be acknowledged (well under a second when healthy).
ACK_DEADLINE_S = 60.0


def wait_for_acknowledged(acknowledged: list[str], count: int, futures: list[Future[None]],
                          log: Path) -> None:
    """Return once `count` webhooks are acknowledged; fail if the burst stalls or ends first."""
    deadline = time.monotonic() + ACK_DEADLINE_S
    while len(acknowledged) < count:
        if all(future.done() for future in futures):
            pytest.fail(f"the burst ended with {len(acknowledged)} of {BURST} webhooks "
                        f"acknowledged, before the kill at {count}; see {log}")
        if time.monotonic() > deadline:
            for future in futures:
                future.cancel()  # do not wait for the rest of the burst
            pytest.fail(f"only {len(acknowledged)} of {count} webhooks acknowledged after "
                        f"{ACK_DEADLINE_S:.0f} s; see {log}")
        time.sleep(0.005)


REDIS = pytest.mark.redis


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=REDIS),
                        pytest.param("redis-cluster", marks=REDIS),
                        pytest.param("redis-sentinel", marks=REDIS)])
def store_env(request, tmp_path) -> Iterator[dict[str, str]]:
    """The store the service writes to: a SQLite file, a PostgreSQL database of its own, a
    Redis server of its own, or this run's Redis Cluster or Sentinel deployment."""
    if request.param == "sqlite":
        yield {"STORE_URL": f"sqlite:///{tmp_path}/callrelay.sqlite3"}
    elif request.param == "postgres":
        with temporary_database() as url:
            yield {"STORE_URL": url}
    elif request.param == "redis":
        with redis_server() as server:
            yield {"STORE_URL": server.url}
    elif request.param == "redis-cluster":
        yield {"STORE_URL": request.getfixturevalue("redis_cluster").url,
               "REDIS_CLUSTER": "true"}
    else:
        sentinel = request.getfixturevalue("redis_sentinel")
        yield {"STORE_URL": sentinel.url, "REDIS_SENTINELS": sentinel.addresses,
               "REDIS_SENTINEL_MASTER": sentinel.MASTER}


def test_sigkill_mid_burst_loses_no_acknowledged_webhook(tmp_path, twilio, store_env):
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **store_env)
    calls = [phone_calls_sdk(ACCOUNT_SID, identity=f"user{i}") for i in range(BURST)]
    # Each call's ringing child leg: a distinct leg (and row) per webhook.
    steps = [call.answer[1] for call in calls]
    with Service(env, workers=3, port=port, log_path=tmp_path / "callrelay.log") as service:
        session = requests.Session()
        acknowledged: list[str] = []
        lock = threading.Lock()

        def send(step):
            url = service.url + step.path
            try:
                answer = session.post(url, data=step.params, timeout=10,
                                      headers={"X-Twilio-Signature": sign(url, step.params)})
            except requests.RequestException:
                return  # the connection died with the worker: not acknowledged
            if 200 <= answer.status_code < 300:
                with lock:
                    acknowledged.append(step.params["CallSid"])

        victim = service.worker_pids()[0]
        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(send, step) for step in steps]
            wait_for_acknowledged(acknowledged, BURST // 3, futures, tmp_path / "callrelay.log")
            os.kill(victim, signal.SIGKILL)
            at_kill = len(acknowledged)
            for future in futures:
                future.result()

        assert at_kill < BURST, "the burst ended before the kill"
        assert victim not in service.worker_pids()  # gunicorn replaced it
        auth = {"Authorization": f"Bearer {RELAY_TOKEN}"}
        missing = [sid for sid in acknowledged
                   if session.get(f"{service.url}/calls/{sid}", headers=auth,
                                  timeout=10).status_code != 200]
        assert missing == []
