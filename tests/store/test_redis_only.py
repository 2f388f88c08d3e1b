"""What only the Redis adapter has: a TTL on every key, fork safety, outages and recovery."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import cast

import pytest
import redis
from redis.cluster import RedisCluster

from sandbox.devtools import free_port
from services.errors import StoreUnavailable
from services.legs.rules import Retention
from services.store.legs import LegStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.redis.topology import RedisTopology
from tests.store.scenario import Scenario, apply_all, ev, sid
from tests.store.support import StoreFactory
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import LocalCluster


def prefix_ttls(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {key: client.pttl(key) for key in client.scan_iter(match=f"{prefix}*")}


# Real time passes while the scenario runs: no TTL may have counted down by more than this.
SLACK_MS = 10_000


def assert_every_key_expires(client: redis.Redis, prefix: str, retention: Retention) -> None:
    """Every key has a TTL that the retention bounds: a leg's key goes `leg_retention_s` after it
    ended or `max_call_duration_s` after its last update, an index no later than the longest retention
    (plus the second the adapter adds when it cannot use EXPIRE GT)."""
    ttls = prefix_ttls(client, prefix)
    assert ttls, "the scenario wrote nothing?"
    assert all(ttl > 0 for ttl in ttls.values()), {k: t for k, t in ttls.items() if t <= 0}
    longest_ms = max(retention.max_call_duration_s, retention.leg_retention_s) * 1000 + 1000
    for key, ttl in ttls.items():
        if key.startswith(f"{prefix}leg:"):
            ended = bool(client.hexists(key, "ended_at"))
            bound_ms = (retention.leg_retention_s if ended else retention.max_call_duration_s) * 1000
            # Each leg here was last written when it ended (or, live, when it was updated).
            assert bound_ms - SLACK_MS < ttl <= bound_ms, (key, ended, ttl)
            continue
        if key.startswith(f"{prefix}ended:"):  # a tombstone: far longer than the leg, bounded
            # (written ahead for a leg not ended: from when the leg would expire)
            assert ttl <= (retention.max_call_duration_s + retention.tombstone_s) * 1000, \
                (key, ttl)
            assert ttl > retention.leg_retention_s * 1000, (key, ttl)
            continue
        assert client.type(key) == "zset", key
        assert ttl <= longest_ms, (key, ttl)
        # An index lives at least as long as each member's leg.
        for member in client.zrange(key, 0, -1):
            leg_ttl = ttls.get(f"{prefix}leg:{member}", 0)
            assert ttl >= leg_ttl - 50, (key, member)


def redis_scenario(store: LegStore, clock: FakeClock) -> None:
    scenario = Scenario()
    apply_all(store, scenario.events)
    clock.advance(601)  # every leg runs out and leaves a tombstone, bob's live one too
    apply_all(store, [
        ev(scenario.c2, "ringing", parent_sid=scenario.p3, to="client:dave"),  # stays buried
        ev(scenario.c1, "ringing", parent_sid=scenario.p2, to="client:dave"),  # stays ended
        ev(sid(), "ringing", parent_sid=scenario.p3, to="client:dave"),
        ev(sid(), "completed", parent_sid=scenario.p2),
    ])
    store.purge()


@pytest.mark.redis
@pytest.mark.parametrize("expire_gt", [True, False], ids=["expire-gt", "no-gt"])
def test_redis_never_holds_a_key_without_ttl(redis_factory: StoreFactory,
                                             redis_client: redis.Redis, clock: FakeClock,
                                             expire_gt: bool) -> None:
    retention = Retention(leg_retention_s=60, max_call_duration_s=600)
    store = redis_factory(retention, clock)
    assert isinstance(store, RedisStore)
    store.ping()
    if not expire_gt:  # as on Redis < 7, which lacks EXPIRE NX/GT
        client, _ = store._redis()
        store._gt = {id(client): False}
    redis_scenario(store, clock)
    assert_every_key_expires(redis_client, redis_factory.prefix, retention)
    assert [leg.call_sid for leg in store.live_sdk_legs("dave")] != []


@pytest.mark.redis
def test_redis_store_survives_a_fork(redis_factory: StoreFactory) -> None:
    store = redis_factory()
    parent_leg, child_leg = sid(), sid()
    store.apply(ev(parent_leg, "ringing"))  # the pool now holds a connection

    def in_child() -> None:
        store.apply(ev(child_leg, "ringing", parent_sid=parent_leg))

    proc = multiprocessing.get_context("fork").Process(target=in_child)
    proc.start()
    proc.join(timeout=30)
    assert proc.exitcode == 0
    # The child did not close or share the parent's socket.
    assert [leg.call_sid for leg in store.call_legs(parent_leg)] == [parent_leg, child_leg]


def redis_calls(store: LegStore) -> list[Callable[[], object]]:
    leg = sid()
    return [lambda: store.apply(ev(leg, "ringing")), lambda: store.get(leg), store.ping,
            lambda: store.call_legs(leg), lambda: store.live_sdk_legs("alice"),
            store.live_calls, store.purge]


def outcome_within(call: Callable[[], object], deadline_s: float = 30.0) -> object:
    """What `call` returned or raised, run in a thread; a call that hangs fails the test.

    The deadline is no speed claim (the client's own timeouts are a second or two): only
    that the call gives up by itself rather than waiting for ever.
    """
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # handed back: the main thread asserts
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=deadline_s)
    assert not thread.is_alive(), "the call never gave up"
    return outcome[0]


def assert_unavailable(store: LegStore) -> None:
    for call in redis_calls(store):
        error = outcome_within(call)
        assert isinstance(error, StoreUnavailable), error
        assert "s3cret" not in error.message and "127.0.0.1" not in error.message


def test_redis_outage_raises_store_unavailable() -> None:
    store = RedisStore(RedisDatabase(f"redis://:s3cret@127.0.0.1:{free_port()}/0"), Retention())
    assert_unavailable(store)
    store.close()


def test_redis_that_hangs_times_out() -> None:
    with socket_that_never_answers() as port:
        store = RedisStore(RedisDatabase(f"redis://:s3cret@127.0.0.1:{port}/0"), Retention())
        assert isinstance(outcome_within(store.ping), StoreUnavailable)
        store.close()


@contextmanager
def socket_that_never_answers() -> Iterator[int]:
    """A listening port that accepts connections and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.mark.redis
def test_redis_store_recovers_when_redis_comes_back() -> None:
    server = RedisServer(free_port()).start()
    store = RedisStore(RedisDatabase(server.url), Retention(), prefix="callrelay-recovery:")
    try:
        before = sid()
        store.apply(ev(before, "ringing"))
        server.stop()
        assert_unavailable(store)
        server.start()
        # The same object, no restart: the very next call works (the data went with the
        # server, which ran without persistence).
        after = sid()
        assert store.apply(ev(after, "ringing")).status == "ringing"
        assert store.get(after) is not None
        # Again, with no failing call in between: the pooled connection is stale.
        server.stop()
        server.start()
        store.ping()
        assert store.apply(ev(after, "in-progress")).status == "in-progress"
    finally:
        store.close()
        server.stop()


@pytest.mark.redis
def test_a_cluster_store_writes_again_once_a_replica_took_over_a_dead_shard(tmp_path) -> None:
    """SIGKILL of the primary that holds a leg's slot: its replica is promoted (the cluster's
    node timeout, 1 s here), and the store, told of the new map by the failed write, writes
    there again: within a few of Twilio's retries, not never."""
    cluster = LocalCluster(tmp_path / "cluster").start()
    db = RedisDatabase(cluster.url, RedisTopology("cluster"))
    try:
        store = RedisStore(db, Retention())
        leg = sid()
        store.apply(ev(leg, "ringing", from_="client:alice"))
        port = cast(RedisCluster, db.client()).get_node_from_key(f"callrelay:leg:{{{leg}}}").port
        victim = next(node for node in cluster.nodes if node.port == port)
        victim.kill()
        applied = None
        for _ in range(100):  # Twilio's retries, quickened: one every 0.1 s
            try:
                applied = store.apply(ev(leg, "in-progress", from_="client:alice"))
                break
            except StoreUnavailable:
                time.sleep(0.1)
        assert applied is not None and applied.status == "in-progress"
        assert store.live_sdk_legs("alice") == [applied]
    finally:
        db.close()
        cluster.stop()
