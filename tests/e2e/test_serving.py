"""The Procfile's serving model: slow or stalled clients and a locked database (a SQLite file, a
PostgreSQL row) stall no one else."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import psycopg
import pytest
import requests

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import free_port
from tests.e2e.harness import Service
from tests.forwarding.support import SECRET, Backend, sdk_message, wait_until
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign
from tests.support.postgres_server import temporary_database

pytestmark = pytest.mark.e2e
STALLED = 200


@pytest.fixture
def service(tmp_path, twilio):
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    # One worker: every connection lands on it, so nothing can hide behind another worker.
    with Service(env, workers=1, port=port, log_path=tmp_path / "callrelay.log") as svc:
        yield svc


# What "answers at once" means below. Not a speed claim: the machine is shared, and a request
# that took a second under load proves nothing. A request held up behind a stalled client or a
# held lock would wait for as long as it lasts (indefinitely here, or until the test releases
# it after the check), and fail the check; one that is not answers in milliseconds.
PROMPT_S = 5.0


def timed(method: str, url: str, **kwargs) -> tuple[int, float]:
    start = time.monotonic()
    answer = requests.request(method, url, timeout=10, **kwargs)
    return answer.status_code, time.monotonic() - start


def signed_ringing(service: Service, identity: str) -> tuple[str, dict[str, str], dict[str, str]]:
    step = phone_calls_sdk(ACCOUNT_SID, identity=identity).answer[1]
    url = service.url + step.path
    return url, step.params, {"X-Twilio-Signature": sign(url, step.params)}


def test_stalled_clients_leave_health_checks_and_webhooks_answering(service):
    head = b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
    half_body = (b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                 b"application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nCallSid=CA")
    with ExitStack() as stack:
        for i in range(STALLED):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", service.port)))
            sock.sendall(head if i % 2 else half_body)
        time.sleep(0.5)  # accepted and being read
        for n in range(3):
            assert timed("GET", service.url + "/healthz")[1] < PROMPT_S
            url, params, headers = signed_ringing(service, f"stalled{n}")
            status, seconds = timed("POST", url, data=params, headers=headers)
            assert status == 204 and seconds < PROMPT_S


def test_a_webhook_waiting_for_the_database_lock_stalls_no_other_request(service, tmp_path):
    url, params, headers = signed_ringing(service, "waits")
    # Another process (this test) holds SQLite's write lock, as a second worker or instance
    # on the same file would: the webhook waits for it, and must wait alone.
    holder = sqlite3.connect(tmp_path / "callrelay.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(timed, "POST", url, data=params, headers=headers)
            time.sleep(0.5)
            assert timed("GET", service.url + "/healthz")[1] < PROMPT_S
            auth = {"Authorization": f"Bearer {RELAY_TOKEN}"}
            assert timed("GET", service.url + "/calls", headers=auth)[1] < PROMPT_S
            time.sleep(1.0)
            assert not waiting.done()  # still waiting for the lock, as it should
            holder.execute("COMMIT")
            status, seconds = waiting.result(timeout=10)
    finally:
        holder.close()
    # It did wait: the lock was held across the two sleeps above (1.5 s).
    assert status == 204 and seconds >= 1.5
    sid = params["CallSid"]
    answer = requests.get(f"{service.url}/calls/{sid}", timeout=10,
                          headers={"Authorization": f"Bearer {RELAY_TOKEN}"})
    assert answer.status_code == 200


@pytest.mark.postgres
def test_a_webhook_waiting_for_a_postgres_row_lock_stalls_no_other_request(tmp_path, twilio):
    port = free_port()
    auth = {"Authorization": f"Bearer {RELAY_TOKEN}"}
    with temporary_database() as database_url:
        env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                       STORE_URL="", DATABASE_URL=database_url)
        with Service(env, workers=1, port=port, log_path=tmp_path / "callrelay.log") as svc:
            call = phone_calls_sdk(ACCOUNT_SID, identity="waits")
            ringing, answered = call.answer[1], call.answer[3]
            for step in (ringing, answered):
                assert step.params["CallSid"] == call.child_sid
            url = svc.url + ringing.path
            assert requests.post(url, data=ringing.params, timeout=10, headers={
                "X-Twilio-Signature": sign(url, ringing.params)}).status_code == 204
            # Another session (another instance, a migration, an operator's psql) holds the
            # leg's row: the next callback for it waits on the lock, and must wait alone.
            with psycopg.connect(database_url) as holder:
                holder.execute("SELECT 1 FROM callrelay_legs WHERE call_sid = %s FOR UPDATE",
                               (call.child_sid,))
                with ThreadPoolExecutor(1) as pool:
                    waiting = pool.submit(timed, "POST", url, data=answered.params,
                                          headers={"X-Twilio-Signature":
                                                   sign(url, answered.params)})
                    time.sleep(0.5)
                    assert timed("GET", svc.url + "/healthz")[1] < PROMPT_S
                    assert timed("GET", svc.url + "/readyz")[1] < PROMPT_S
                    assert timed("GET", f"{svc.url}/calls/{call.child_sid}", headers=auth)[1] \
                        < PROMPT_S
                    other_url, other, headers = signed_ringing(svc, "other")
                    assert timed("POST", other_url, data=other, headers=headers)[0] == 204
                    time.sleep(1.0)
                    assert not waiting.done()  # still waiting for the lock, as it should
                    holder.commit()
                    status, seconds = waiting.result(timeout=10)
            # It did wait: the lock was held across the two sleeps above (1.5 s).
            assert status == 204 and seconds >= 1.5
            leg = requests.get(f"{svc.url}/calls/{call.child_sid}", headers=auth,
                               timeout=10).json()["legs"]
            assert {g["call_sid"]: g["status"] for g in leg}[call.child_sid] == "in-progress"


def test_subscriptions_and_forwarding_run_in_the_gevent_workers(tmp_path, twilio):
    # The delivery and subscription threads are greenlets under the gevent worker.
    backend = Backend()
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   FORWARD_URL=backend.url, FORWARD_SECRET=SECRET)
    try:
        with Service(env, workers=2, port=port, log_path=tmp_path / "callrelay.log") as svc:
            call = sdk_calls_phone(ACCOUNT_SID, identity="alice")
            for step in call.answer:
                url = svc.url + step.path
                answer = requests.post(url, data=step.params, timeout=10,
                                       headers={"X-Twilio-Signature": sign(url, step.params)})
                assert answer.status_code in (200, 204)
            wait_until(lambda: [s.call_sid for s in twilio.subscriptions] == [call.sdk_sid])
            assert twilio.subscriptions[0].callback == svc.url + "/twilio/messages"
            raw = json.dumps(sdk_message(call.sdk_sid, {"hello": "gevent"})).encode()
            path = f"/twilio/messages?bodySHA256={hashlib.sha256(raw).hexdigest()}"
            answer = requests.post(svc.url + path, data=raw, timeout=10, headers={
                "Content-Type": "application/json",
                "X-Twilio-Signature": sign(svc.url + path, {})})
            assert answer.status_code == 204
            [delivery] = backend.wait_accepted(1)
            assert delivery.verified()["data"]["content"] == {"hello": "gevent"}
    finally:
        backend.stop()
