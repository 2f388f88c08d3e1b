"""The outbox contract, run against every adapter (SQLite file, real Redis, real PostgreSQL) and
the in-memory fake; the leases' too, and against the in-memory leases the unit tests use."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from services.store.outbox import Backlog, ForwardingStore, Leases, OutboxEvent
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.outbox import PostgresOutbox
from services.store.redis.database import RedisDatabase
from services.store.redis.outbox import RedisOutbox
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.outbox import SQLiteOutbox
from tests.store.support import REDIS_KINDS, delete_prefix, redis_database, redis_location
from tests.support.clock import FakeClock
from tests.support.memory_outbox import MemoryOutbox
from tests.support.memory_store import MemoryLeases
from tests.support.postgres_server import temporary_schema
from tests.support.redis_server import redis_url

OutboxFactory = Callable[..., ForwardingStore]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


ADAPTERS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("redis-cluster", marks=pytest.mark.redis),
            pytest.param("redis-sentinel", marks=pytest.mark.redis),
            pytest.param("postgres", marks=pytest.mark.postgres), "memory"]


@pytest.fixture(params=ADAPTERS)
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxFactory]:
    """Outboxes of the adapter under test, all on the same storage."""
    with outboxes(request.param, tmp_path, request) as factory:
        yield factory


@pytest.fixture(params=[*ADAPTERS, "memory-leases"])
def make_leases(request: pytest.FixtureRequest, tmp_path: Path
                ) -> Iterator[Callable[[], Leases]]:
    """Handles on one storage of named leases, for each adapter and the in-memory fakes."""
    if request.param == "memory-leases":
        leases = MemoryLeases()
        yield lambda: leases
        return
    with outboxes(request.param, tmp_path, request) as factory:
        yield factory


@contextmanager
def outboxes(kind: str, tmp_path: Path,
             request: pytest.FixtureRequest) -> Iterator[OutboxFactory]:
    """Opens outboxes of one adapter on one storage; closes them (and cleans Redis, drops the
    PostgreSQL schema) after."""
    if kind == "postgres":
        database = request.getfixturevalue("postgres_database")
        with temporary_schema(database) as url, _outboxes(kind, tmp_path, url) as factory:
            yield factory
        return
    if kind == "redis-cluster":
        url = redis_location(kind, request.getfixturevalue("redis_cluster").url)
    elif kind == "redis-sentinel":
        sentinel = request.getfixturevalue("redis_sentinel")
        url = redis_location(kind, sentinel.url, sentinel.addresses, sentinel.MASTER)
    else:
        url = redis_url() if kind == "redis" else ""
    with _outboxes(kind, tmp_path, url) as factory:
        yield factory


@contextmanager
def _outboxes(kind: str, tmp_path: Path, url: str) -> Iterator[OutboxFactory]:
    opened: list[ForwardingStore] = []
    prefix = f"callrelay-test:{uuid.uuid4().hex}:"
    memory: list[MemoryOutbox] = []

    def factory(clock: Callable[[], float] = time.time) -> ForwardingStore:
        outbox: ForwardingStore
        if kind == "memory":  # one storage: every handle is the same object, on one clock
            if not memory:
                memory.append(MemoryOutbox(clock))
            return memory[0]
        if kind == "sqlite":
            outbox = SQLiteOutbox(SQLiteDatabase(str(tmp_path / "outbox.sqlite3")), clock)
        elif kind == "postgres":
            outbox = PostgresOutbox(PostgresDatabase(url), clock)
        else:
            outbox = RedisOutbox(redis_database(kind, url), clock, prefix=prefix)
        opened.append(outbox)
        return outbox

    yield factory
    for outbox in opened:
        outbox.close()
    if kind in REDIS_KINDS:
        database = redis_database(kind, url)
        delete_prefix(database.client(), prefix)
        database.close()


def event(event_id: str, stream: str = "CA1") -> OutboxEvent:
    return OutboxEvent(id=event_id, stream=stream, body=f'{{"id":"{event_id}"}}')


def ids(events: list[OutboxEvent]) -> list[str]:
    return [e.id for e in events]


def test_an_id_is_queued_once_even_after_delivery(make_outbox, clock):
    outbox = make_outbox(clock)
    assert outbox.enqueue(event("a1")) is True
    assert outbox.enqueue(event("a1")) is False
    [leased] = outbox.lease("w1", 30)
    assert (leased.body, leased.attempts, leased.created_at) == ('{"id":"a1"}', 0, clock.now)
    outbox.ack("a1")
    assert outbox.enqueue(event("a1")) is False
    assert outbox.lease("w1", 30) == []


def test_only_the_head_of_each_stream_is_leased(make_outbox, clock):
    outbox = make_outbox(clock)
    for e in (event("a1"), event("b1", "CA2"), event("a2"), event("b2", "CA2")):
        outbox.enqueue(e)
    assert sorted(ids(outbox.lease("w1", 30))) == ["a1", "b1"]
    assert outbox.lease("w2", 30) == []  # leased, and the rest wait behind them
    outbox.ack("a1")
    assert ids(outbox.lease("w2", 30)) == ["a2"]
    outbox.ack("b1")
    outbox.ack("a2")
    assert ids(outbox.lease("w1", 30)) == ["b2"]


def test_a_failed_event_holds_its_stream_until_its_retry(make_outbox, clock):
    outbox = make_outbox(clock)
    outbox.enqueue(event("a1"))
    outbox.enqueue(event("a2"))
    outbox.lease("w1", 30)
    outbox.retry_at("a1", "w1", clock.now + 10, "HTTP 503")
    assert outbox.lease("w1", 30) == []
    clock.now += 10
    [again] = outbox.lease("w2", 30)
    assert (again.id, again.attempts) == ("a1", 1)


def test_an_event_set_aside_lets_its_stream_go_on_and_is_retried_on_its_own(make_outbox,
                                                                           clock):
    outbox = make_outbox(clock)
    for e in (event("a1"), event("a2"), event("a3"), event("b1", "CA2")):
        outbox.enqueue(e)
    assert sorted(ids(outbox.lease("w1", 30))) == ["a1", "b1"]
    outbox.retry_at("a1", "w1", clock.now + 10, "HTTP 400")  # held: a2 waits one backoff
    outbox.ack("b1")
    assert outbox.lease("w1", 30) == []
    clock.now += 10
    assert ids(outbox.lease("w1", 30)) == ["a1"]
    outbox.set_aside("a1", "w1", clock.now + 100, "HTTP 400")
    assert outbox.backlog() == Backlog(pending=3, dead=0)  # still pending, counted once
    [head] = outbox.lease("w1", 30)  # the stream goes on at once
    assert (head.id, head.stream, head.attempts) == ("a2", "CA1", 0)
    outbox.ack("a2")
    outbox.enqueue(event("a4"))
    assert ids(outbox.lease("w1", 30)) == ["a3"]
    outbox.ack("a3")
    assert ids(outbox.lease("w1", 30)) == ["a4"]  # events queued later do not wait either
    outbox.ack("a4")
    assert outbox.lease("w1", 30) == []
    clock.now += 100
    [again] = outbox.lease("w2", 30)  # retried on its own schedule, still the call's event
    assert (again.id, again.stream, again.attempts) == ("a1", "CA1", 2)
    outbox.set_aside("a1", "w2", clock.now + 100, "HTTP 422")  # aside again: no change
    assert outbox.lease("w1", 30) == []
    clock.now += 100
    assert ids(outbox.lease("w1", 30)) == ["a1"]
    outbox.bury("a1", "w1", "HTTP 422")
    [dead] = outbox.dead()
    assert (dead.id, dead.stream, dead.attempts, dead.last_error) == ("a1", "CA1", 4, "HTTP 422")
    assert outbox.lease("w1", 30) == []
    outbox.enqueue(event("a5"))
    assert outbox.revive("a1") is True
    assert ids(outbox.lease("w1", 30)) == ["a5"]  # revived behind the pending events,
    assert outbox.lease("w1", 30) == []           # and holding its stream again
    outbox.ack("a5")
    [revived] = outbox.lease("w1", 30)
    assert (revived.id, revived.stream, revived.attempts) == ("a1", "CA1", 0)
    outbox.ack("a1")
    assert outbox.lease("w1", 30) == [] and outbox.dead() == []


def test_set_aside_only_counts_for_the_lease_holder(make_outbox, clock):
    outbox = make_outbox(clock)
    outbox.enqueue(event("a1"))
    outbox.enqueue(event("a2"))
    outbox.lease("w1", 30)
    outbox.set_aside("a1", "someone-else", clock.now + 100, "late")  # ignored
    assert outbox.lease("w2", 30) == []
    outbox.set_aside("a1", "w1", clock.now + 100, "HTTP 400")
    assert ids(outbox.lease("w2", 30)) == ["a2"]
    clock.now += 100
    outbox.ack("a2")
    [again] = outbox.lease("w1", 30)
    assert (again.id, again.attempts) == ("a1", 1)
    outbox.ack("a1")
    assert outbox.lease("w1", 30) == []


def test_an_expired_lease_is_retaken_and_the_old_owner_loses_it(make_outbox, clock):
    first, second = make_outbox(clock), make_outbox(clock)
    first.enqueue(event("a1"))
    assert ids(first.lease("dead-worker", 30)) == ["a1"]
    assert second.lease("w2", 30) == []
    clock.now += 31
    assert ids(second.lease("w2", 30)) == ["a1"]
    first.retry_at("a1", "dead-worker", clock.now + 100, "late")  # ignored: not its lease
    first.bury("a1", "dead-worker", "late")
    assert second.dead() == []
    second.ack("a1")
    assert second.lease("w2", 30) == []


def test_buried_events_are_listed_and_can_be_revived(make_outbox, clock):
    outbox = make_outbox(clock)
    for e in (event("a1"), event("a2"), event("a3")):
        outbox.enqueue(e)
    outbox.lease("w1", 30)
    outbox.retry_at("a1", "w1", clock.now, "HTTP 500")
    outbox.lease("w1", 30)
    clock.now += 5
    outbox.bury("a1", "w1", "HTTP 502")
    [dead] = outbox.dead()
    assert (dead.id, dead.stream, dead.attempts, dead.last_error) == ("a1", "CA1", 2, "HTTP 502")
    assert (dead.dead_at, dead.body) == (clock.now, '{"id":"a1"}')
    assert ids(outbox.lease("w1", 30)) == ["a2"]  # the stream moves on
    assert outbox.revive("a1") is True and outbox.revive("a1") is False
    assert outbox.revive("unknown") is False
    assert outbox.dead() == []
    assert outbox.lease("w1", 30) == []  # a2 still in flight: a1 waits behind it
    outbox.ack("a2")
    assert ids(outbox.lease("w1", 30)) == ["a3"]
    outbox.ack("a3")
    [revived] = outbox.lease("w1", 30)
    assert (revived.id, revived.attempts) == ("a1", 0)


def test_retry_all_queues_every_dead_event_again_oldest_first(make_outbox, clock):
    outbox = make_outbox(clock)
    for e in (event("a1"), event("b1", "CA2"), event("a2"), event("c1", "CA3")):
        outbox.enqueue(e)
        clock.now += 1
    assert outbox.revive_all() == 0
    assert sorted(ids(outbox.lease("w1", 30))) == ["a1", "b1", "c1"]
    outbox.bury("a1", "w1", "HTTP 500")
    outbox.bury("b1", "w1", "HTTP 410")
    outbox.ack("c1")
    clock.now += 1
    assert ids(outbox.lease("w1", 30)) == ["a2"]
    outbox.bury("a2", "w1", "HTTP 500")
    outbox.enqueue(event("a3"))
    assert [d.id for d in outbox.dead()] == ["a2", "b1", "a1"]
    assert outbox.revive_all() == 3
    assert outbox.dead() == [] and outbox.revive_all() == 0
    # a3 was pending before the retry: the revived a1 and a2 wait behind it, in their order.
    assert sorted(ids(outbox.lease("w1", 30))) == ["a3", "b1"]
    outbox.ack("a3")
    outbox.ack("b1")
    [first] = outbox.lease("w1", 30)
    assert (first.id, first.attempts) == ("a1", 0)
    outbox.ack("a1")
    assert ids(outbox.lease("w1", 30)) == ["a2"]


def test_a_deleted_dead_event_is_gone_but_its_id_stays_known(make_outbox, clock):
    outbox = make_outbox(clock)
    outbox.enqueue(event("a1"))
    outbox.enqueue(event("a2"))
    outbox.lease("w1", 30)
    outbox.bury("a1", "w1", "HTTP 410")
    assert outbox.delete_dead("a2") is False  # pending, not dead
    assert outbox.delete_dead("unknown") is False
    assert outbox.delete_dead("a1") is True
    assert outbox.delete_dead("a1") is False
    assert outbox.dead() == []
    assert outbox.revive("a1") is False and outbox.revive_all() == 0
    assert outbox.enqueue(event("a1")) is False  # a duplicate is not queued again
    assert ids(outbox.lease("w1", 30)) == ["a2"]


def test_dead_list_is_newest_first_and_limited(make_outbox, clock):
    outbox = make_outbox(clock)
    for n in range(3):
        outbox.enqueue(event(f"e{n}", f"CA{n}"))
    for leased in outbox.lease("w1", 30):
        clock.now += 1
        outbox.bury(leased.id, "w1", "HTTP 410")
    assert [d.id for d in outbox.dead()] == ["e2", "e1", "e0"]
    assert [d.id for d in outbox.dead(limit=2)] == ["e2", "e1"]


def test_backlog_counts_pending_and_dead_events_whoever_asks(make_outbox, clock):
    worker, other_instance = make_outbox(clock), make_outbox(clock)
    assert worker.backlog() == Backlog(pending=0, dead=0)
    for e in (event("a1"), event("a2"), event("b1", "CA2"), event("c1", "CA3")):
        worker.enqueue(e)
    assert other_instance.backlog() == Backlog(pending=4, dead=0)
    leased = ids(worker.lease("w1", 30))  # being delivered: still pending
    assert sorted(leased) == ["a1", "b1", "c1"]
    assert other_instance.backlog() == Backlog(pending=4, dead=0)
    worker.retry_at("b1", "w1", clock.now + 60, "HTTP 503")  # waiting for its retry: pending
    worker.ack("a1")
    worker.bury("c1", "w1", "HTTP 410")
    assert other_instance.backlog() == Backlog(pending=2, dead=1)
    assert worker.revive("c1") is True
    assert other_instance.backlog() == Backlog(pending=3, dead=0)


def test_concurrent_workers_deliver_each_event_once_in_order(make_outbox):
    outbox = make_outbox()
    streams = {f"CA{s}": [f"s{s}e{n}" for n in range(15)] for s in range(4)}
    for n in range(15):
        for stream, events in streams.items():
            outbox.enqueue(event(events[n], stream))
    delivered: dict[str, list[str]] = {s: [] for s in streams}
    lock = threading.Lock()

    def worker(name: str) -> None:
        mine = make_outbox()
        idle = 0
        while idle < 20:
            leased = mine.lease(name, 30, limit=2)
            idle = 0 if leased else idle + 1
            for e in leased:
                with lock:  # a duplicate or an overtaking event shows in the lists
                    delivered[e.stream].append(e.id)
                mine.ack(e.id)
            if not leased:
                time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert delivered == streams


def test_leases_are_taken_once_until_released_or_run_out(make_leases):
    first, second = make_leases(), make_leases()
    assert first.take_lease("subscription:CA1", 30) is True
    assert second.take_lease("subscription:CA1", 30) is False
    assert second.take_lease("subscription:CA2", 30) is True
    first.release_lease("subscription:CA1")
    assert second.take_lease("subscription:CA1", 0.05) is True
    time.sleep(0.1)
    assert first.take_lease("subscription:CA1", 30) is True
    first.renew_lease("subscription:CA1", 0.05)
    time.sleep(0.1)
    assert second.take_lease("subscription:CA1", 30) is True


@pytest.mark.redis
def test_every_redis_key_has_a_ttl(clock):
    url = redis_url()
    prefix = f"callrelay-test:{uuid.uuid4().hex}:"
    outbox = RedisOutbox(RedisDatabase(url), clock, prefix=prefix)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        for e in (event("a1"), event("a2"), event("b1", "CA2")):
            outbox.enqueue(e)
        outbox.lease("w1", 30)
        outbox.bury("a1", "w1", "HTTP 500")
        outbox.retry_at("b1", "w1", clock.now + 5, "HTTP 503")
        outbox.enqueue(event("c1", "CA3"))
        outbox.enqueue(event("c2", "CA3"))
        outbox.lease("w1", 30)
        outbox.set_aside("c1", "w1", clock.now + 5, "HTTP 400")
        outbox.enqueue(event("d1", "CA4"))
        outbox.lease("w1", 30)
        outbox.bury("d1", "w1", "HTTP 410")
        assert outbox.delete_dead("d1") is True
        outbox.enqueue(event("e1", "CA5"))
        outbox.lease("w1", 30)
        outbox.bury("e1", "w1", "HTTP 410")
        assert outbox.revive_all() == 2  # a1 and e1
        outbox.take_lease("subscription:CA1", 30)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        assert len(keys) >= 10
        assert all(client.pttl(key) > 0 for key in keys), {k: client.pttl(k) for k in keys}
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()
        outbox.close()
