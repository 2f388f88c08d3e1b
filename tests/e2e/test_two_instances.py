"""Two callrelay instances (two Procfile commands) on one Redis (a server, a Redis Cluster, or a
primary behind Sentinel), or one PostgreSQL database, agree on every leg, and ride out the
store's outage."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from sandbox.calls import Call, Step, phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import free_port
from tests.e2e.harness import Service
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign
from tests.support.postgres_server import temporary_database
from tests.support.redis_server import RedisServer, redis_server
from tests.support.redis_topologies import LocalCluster, LocalSentinel
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}
PUBLIC = "https://relay.example.com"  # both instances sit behind one public URL


def webhook(service: Service, step: Step) -> requests.Response:
    return requests.post(service.url + step.path, data=step.params, timeout=10,
                         headers={"X-Twilio-Signature": sign(PUBLIC + step.path, step.params)})


def legs(service: Service, call: Call) -> dict[str, tuple]:
    answer = requests.get(f"{service.url}/calls/{call.parent_sid}", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return {leg["call_sid"]: (leg["status"], leg["identity"], leg["parent_call_sid"])
            for leg in answer.json()["legs"]}


def notify(service: Service, body: dict) -> requests.Response:
    return requests.post(service.url + "/notify", json=body, headers=AUTH, timeout=20)


class Store:
    """The shared store, and how to take it away and bring it back."""

    def __init__(self, url: str, server: RedisServer | TcpProxy | LocalCluster | LocalSentinel,
                 keeps_data: bool, env: dict[str, str] | None = None) -> None:
        self.url, self.server, self.keeps_data = url, server, keeps_data
        self.env = env or {}

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()


@contextmanager
def shared_store(kind: str, workdir: Path) -> Iterator[Store]:
    if kind == "redis":
        # A server of its own, without persistence: it comes back empty.
        with redis_server() as redis:
            yield Store(redis.url, redis, keeps_data=False)
        return
    if kind in ("redis-cluster", "redis-sentinel"):
        # A deployment of its own (the outage kills every node), without persistence: it
        # comes back empty, the cluster's shape kept in its nodes' configuration files.
        deployment: LocalCluster | LocalSentinel
        if kind == "redis-cluster":
            deployment = LocalCluster(workdir)
            env = {"REDIS_CLUSTER": "true"}
        else:
            deployment = LocalSentinel(workdir)
            env = {"REDIS_SENTINELS": deployment.addresses,
                   "REDIS_SENTINEL_MASTER": deployment.MASTER}
        deployment.start()
        try:
            yield Store(deployment.url, deployment, keeps_data=False, env=env)
        finally:
            deployment.stop()
        return
    # The machine's PostgreSQL is shared with other runs: the outage is played by a proxy
    # between callrelay and a database of this test's own.
    with temporary_database() as url:
        server = urlsplit(url)
        with tcp_proxy((server.hostname or "127.0.0.1", server.port or 5432)) as proxy:
            proxied = url.replace(f":{server.port}/", f":{proxy.port}/", 1)
            yield Store(proxied.replace("postgresql://", "postgres://", 1), proxy,
                        keeps_data=True)


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("redis-cluster", marks=pytest.mark.redis),
                        pytest.param("redis-sentinel", marks=pytest.mark.redis),
                        pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(request, tmp_path, twilio):
    with shared_store(request.param, tmp_path / "store") as store:
        # Redis as STORE_URL; PostgreSQL as Heroku and Render hand it, in DATABASE_URL.
        where = {"STORE_URL": store.url, **store.env} if request.param != "postgres" else \
            {"STORE_URL": "", "DATABASE_URL": store.url}
        env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=PUBLIC, **where)
        with Service(env, workers=2, port=free_port(), log_path=tmp_path / "a.log") as a, \
                Service(env, workers=2, port=free_port(), log_path=tmp_path / "b.log") as b:
            yield store, a, b


def test_two_instances_share_one_registry(cluster, twilio):
    store, a, b = cluster
    out = sdk_calls_phone(ACCOUNT_SID, identity="alice")
    inc = phone_calls_sdk(ACCOUNT_SID, identity="bob")

    # Webhooks split across both instances, concurrently, shuffled and duplicated.
    steps = out.answer[1:] + inc.answer[1:]
    events = [(random.choice((a, b)), s) for s in steps + steps]
    random.shuffle(events)
    for step in (out.answer[0], inc.answer[0]):
        assert webhook(a, step).status_code == 200
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda e: webhook(*e), events))
    assert [x.status_code for x in answers] == [204] * len(events)
    assert legs(a, out) == legs(b, out)
    assert legs(b, inc)[inc.child_sid] == ("in-progress", "bob", inc.parent_sid)

    # Webhooks to one, /notify to the other.
    assert notify(b, {"identity": "alice", "content": {"n": 1}}).status_code == 201
    assert notify(a, {"call_sid": inc.parent_sid, "content": {"n": 2}}).status_code == 201
    assert [m.call_sid for m in twilio.messages] == [out.parent_sid, inc.child_sid]

    # Both restart: nothing is lost.
    a.restart()
    b.restart()
    assert legs(a, inc) == legs(b, inc)
    assert notify(a, {"identity": "bob", "content": {"n": 3}}).status_code == 201

    # The store goes down: every route answers fast, as JSON 503, and nothing hangs.
    kept = legs(a, inc)
    store.stop()
    for service in (a, b):
        started = time.monotonic()
        ready = requests.get(service.url + "/readyz", timeout=10)
        sent = notify(service, {"identity": "bob", "content": {}})
        hook = webhook(service, inc.hangup[0])
        # Generous (a shared machine): the property is that nothing waits for the store's
        # return, which never comes while it is down, not a speed.
        assert time.monotonic() - started < 20
        for answer in (ready, sent, hook):
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "store_unavailable"
            assert answer.headers.get("Retry-After")
        assert requests.get(service.url + "/healthz", timeout=5).status_code == 200

    # The store comes back (Redis empty: it keeps nothing on disk). callrelay recovers by
    # itself; what PostgreSQL kept is there, and for Redis reconciliation with Twilio re-learns
    # the live call for a /notify by SID.
    store.start()
    for service in (a, b):
        assert requests.get(service.url + "/readyz", timeout=10).status_code == 200
    if store.keeps_data:
        assert legs(b, inc) == kept
    twilio.set_call(inc.parent_sid, "in-progress", from_="+15005550006", to="+15005550001")
    twilio.set_call(inc.child_sid, "in-progress", parent_call_sid=inc.parent_sid,
                    to="client:bob", direction="outbound-dial")
    before = len(twilio.messages)
    assert notify(b, {"call_sid": inc.parent_sid, "content": {"n": 4}}).status_code == 201
    assert twilio.messages[before].call_sid == inc.child_sid
    for step in inc.hangup + out.hangup:
        assert webhook(random.choice((a, b)), step).status_code == 204
    assert legs(a, inc)[inc.child_sid][0] == "completed"
    for log in ("a.log", "b.log"):
        assert "Traceback" not in (a.log_path.parent / log).read_text()
