"""The store contract, run against every adapter (SQLite file, real Redis), plus Redis specifics."""

from __future__ import annotations

import multiprocessing
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.errors import StoreUnavailable
from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention, merge
from services.store.legs import LegStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from tests.redis_support import RedisServer, free_port

if TYPE_CHECKING:
    from tests.store.conftest import FakeClock, StoreFactory


def sid() -> str:
    return "CA" + uuid.uuid4().hex


def ev(call_sid: str, status: str, **attrs: Any) -> LegEvent:
    return LegEvent(call_sid=call_sid, status=status, **attrs)


def fold(events: Iterable[LegEvent]) -> dict[str, Leg]:
    """The legs applying events in order gives, by the pure rules."""
    legs: dict[str, Leg] = {}
    for e in events:
        legs[e.call_sid] = merge(legs.get(e.call_sid), e, 0.0)
    return legs


def shape(leg: Leg | None) -> tuple[Any, ...] | None:
    """What must match whatever the order of arrival: everything but timestamps."""
    if leg is None:
        return None
    return (leg.status, leg.identity, leg.parent_sid, leg.from_, leg.to, leg.direction,
            leg.account_sid, leg.ended_at is not None)


class Scenario:
    """Three calls: SDK calls out (alice), phone calls in to the SDK (bob), an SDK call canceled.

    Attributes arrive spread over several events, so a lost update shows in the result.
    """

    def __init__(self, tag: str = "") -> None:
        self.p1, self.c1, self.p2, self.c2, self.p3, self.c3 = (sid() for _ in range(6))
        self.alice, self.bob, self.carol = (f"{name}{tag}" for name in ("alice", "bob", "carol"))
        acct = "AC" + "1" * 32
        dial1 = {"parent_sid": self.p1, "from_": "+15005550001", "to": "+15550001111",
                 "direction": "outbound-dial"}
        dial3 = {"parent_sid": self.p3, "to": "+15550003333"}
        self.events = [
            ev(self.p1, "ringing", from_=f"client:{self.alice}"),
            ev(self.p1, "queued", to="+15550001111"),
            ev(self.p1, "initiated", direction="inbound"),
            ev(self.c1, "initiated", **dial1),
            ev(self.c1, "ringing", parent_sid=self.p1),
            ev(self.p1, "in-progress", account_sid=acct),
            ev(self.c1, "in-progress", **dial1),
            ev(self.c1, "completed", parent_sid=self.p1, sequence=3),
            ev(self.p1, "completed", account_sid=acct),
            ev(self.p2, "ringing", from_="+15550002222", direction="inbound"),
            ev(self.p2, "queued", to="+15005550001", account_sid=acct),
            ev(self.c2, "initiated", parent_sid=self.p2, to=f"client:{self.bob}"),
            ev(self.c2, "ringing", parent_sid=self.p2, from_="+15550002222"),
            ev(self.c2, "queued", parent_sid=self.p2, direction="outbound-dial"),
            ev(self.p2, "in-progress"),
            ev(self.c2, "in-progress", parent_sid=self.p2, account_sid=acct),
            ev(self.p3, "ringing", from_=f"client:{self.carol}"),
            ev(self.p3, "initiated", to="+15550003333"),
            ev(self.c3, "initiated", **dial3),
            ev(self.c3, "ringing", **dial3),
            ev(self.c3, "no-answer", **dial3),
            ev(self.p3, "canceled"),
        ]

    def expected(self) -> dict[str, Leg]:
        return fold(self.events)


def apply_all(store: LegStore, events: Iterable[LegEvent]) -> None:
    for e in events:
        store.apply(e)


def check_state(store: LegStore, *scenarios: Scenario) -> None:
    """The store holds what applying the scenarios in order gives, and its indexes agree."""
    for s in scenarios:
        for call_sid, leg in s.expected().items():
            assert shape(store.get(call_sid)) == shape(leg), call_sid
        assert [leg.call_sid for leg in store.call_legs(s.p1)] == [s.p1, s.c1]
        assert [leg.call_sid for leg in store.live_sdk_legs(s.bob)] == [s.c2]
        assert store.live_sdk_legs(s.alice) == []
        assert store.live_sdk_legs(s.carol) == []
    live = [[leg.call_sid for leg in call] for call in store.live_calls()]
    assert sorted(live) == sorted([s.p2, s.c2] for s in scenarios)


# --- the contract, for every adapter -------------------------------------------------------

def test_apply_then_get_round_trips(make_store: StoreFactory) -> None:
    store = make_store()
    parent = sid()
    leg = store.apply(ev(parent, "ringing", from_="client:alice", to="+15550001111",
                         direction="inbound", account_sid="AC" + "2" * 32))
    assert store.get(parent) == leg
    assert (leg.status, leg.identity, leg.parent_sid, leg.ended_at) == ("ringing", "alice",
                                                                         None, None)
    assert leg.is_live and leg.is_sdk and leg.is_parent
    assert store.get(sid()) is None


def test_status_never_regresses(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "in-progress"))
    assert store.apply(ev(leg, "ringing")).status == "in-progress"
    store.apply(ev(leg, "initiated"))
    got = store.get(leg)
    assert got is not None and got.status == "in-progress"


def test_terminal_status_is_final(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "ringing"))
    ended = store.apply(ev(leg, "completed"))
    assert ended.ended_at is not None
    for late in ("ringing", "in-progress", "busy", "initiated"):
        assert store.apply(ev(leg, late)).status == "completed"
    got = store.get(leg)
    assert got is not None and got.status == "completed" and got.ended_at == ended.ended_at


def test_duplicates_are_harmless(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(clock=clock)
    leg = sid()
    event = ev(leg, "ringing", from_="client:alice", direction="inbound")
    first = store.apply(event)
    clock.advance(5)
    assert store.apply(event) == first
    assert store.get(leg) == first
    assert store.live_sdk_legs("alice") == [first]


def test_late_events_fill_in_missing_attributes(make_store: StoreFactory) -> None:
    store = make_store()
    leg = sid()
    store.apply(ev(leg, "in-progress"))
    filled = store.apply(ev(leg, "ringing", from_="client:alice", direction="inbound"))
    assert (filled.status, filled.identity) == ("in-progress", "alice")
    assert store.live_sdk_legs("alice") == [filled]


def test_identity_follows_the_merged_attributes(make_store: StoreFactory) -> None:
    store = make_store()
    parent, child = sid(), sid()
    # Without a direction a child's SDK end is its `To`; a later direction says otherwise.
    store.apply(ev(child, "ringing", parent_sid=parent, from_="+15005550001", to="client:bob"))
    assert [leg.call_sid for leg in store.live_sdk_legs("bob")] == [child]
    moved = store.apply(ev(child, "ringing", direction="inbound"))
    assert moved.identity is None and store.get(child) == moved
    assert store.live_sdk_legs("bob") == []


def test_call_legs_lists_parent_first_then_children(make_store: StoreFactory,
                                                     clock: FakeClock) -> None:
    store = make_store(clock=clock)
    parent, child_a, child_b, other = sid(), sid(), sid(), sid()
    store.apply(ev(child_b, "ringing", parent_sid=parent, to="client:bob"))
    clock.advance(1)
    assert [leg.call_sid for leg in store.call_legs(parent)] == [child_b]  # parent not yet seen
    store.apply(ev(child_a, "initiated", parent_sid=parent, to="+15550001111"))
    clock.advance(1)
    store.apply(ev(parent, "in-progress", from_="+15550002222"))
    store.apply(ev(other, "ringing", parent_sid=sid()))
    legs = store.call_legs(parent)
    assert [leg.call_sid for leg in legs] == [parent, child_b, child_a]
    assert legs[0].is_parent and all(leg.parent_sid == parent for leg in legs[1:])
    assert store.call_legs(sid()) == []


def test_live_sdk_legs_by_identity(make_store: StoreFactory) -> None:
    store = make_store()
    # A device calls out: the SDK sits on the parent (From=client:alice).
    out = sid()
    store.apply(ev(out, "initiated", from_="client:alice", to="+15550001111",
                   direction="inbound"))
    assert store.live_sdk_legs("alice") == []  # not live until ringing
    alice = store.apply(ev(out, "ringing"))
    assert store.live_sdk_legs("alice") == [alice]
    # A phone calls in and <Dial><Client>bob: the SDK sits on the child (To=client:bob).
    inbound, child = sid(), sid()
    store.apply(ev(inbound, "ringing", from_="+15550002222", to="+15005550001",
                   direction="inbound"))
    bob = store.apply(ev(child, "ringing", parent_sid=inbound, from_="+15550002222",
                         to="client:bob", direction="outbound-dial"))
    assert store.live_sdk_legs("bob") == [bob]
    assert store.live_sdk_legs("carol") == []
    store.apply(ev(child, "completed"))
    assert store.live_sdk_legs("bob") == []
    assert store.live_sdk_legs("alice") == [alice]


def test_live_calls_exclude_fully_ended_calls(make_store: StoreFactory) -> None:
    store = make_store()
    ended, live, half = sid(), sid(), sid()
    ended_child, half_child = sid(), sid()
    apply_all(store, [
        ev(ended, "in-progress"), ev(ended_child, "ringing", parent_sid=ended),
        ev(ended_child, "busy"), ev(ended, "completed"),
        ev(live, "ringing", from_="client:alice", direction="inbound"),
        # the parent ended but its child is still up: the call is live
        ev(half, "completed"), ev(half_child, "in-progress", parent_sid=half),
    ])
    calls = store.live_calls()
    assert sorted(call[0].root_sid for call in calls) == sorted([live, half])
    for call in calls:
        assert call == store.call_legs(call[0].root_sid)
    assert len(store.live_calls(limit=1)) == 1
    assert store.live_calls(limit=0) == []


def test_ended_legs_are_forgotten_after_retention(make_store: StoreFactory,
                                                  clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    parent, child = sid(), sid()
    store.apply(ev(parent, "in-progress", from_="client:alice", direction="inbound"))
    store.apply(ev(child, "ringing", parent_sid=parent))
    clock.advance(10)
    store.apply(ev(child, "completed"))
    clock.advance(59)
    assert store.get(child) is not None
    assert [leg.call_sid for leg in store.call_legs(parent)] == [parent, child]
    clock.advance(2)
    assert store.get(child) is None
    assert [leg.call_sid for leg in store.call_legs(parent)] == [parent]
    assert store.get(parent) is not None


def test_live_legs_are_forgotten_without_updates(make_store: StoreFactory,
                                                 clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    leg = sid()
    store.apply(ev(leg, "ringing", from_="client:alice", direction="inbound"))
    clock.advance(599)
    store.apply(ev(leg, "in-progress"))  # an update restarts the count
    clock.advance(599)
    assert store.get(leg) is not None and len(store.live_calls()) == 1
    clock.advance(2)  # the `completed` callback was lost
    assert store.get(leg) is None
    assert store.live_sdk_legs("alice") == []
    assert store.live_calls() == []
    assert store.call_legs(leg) == []
    # A forgotten leg is unknown: a new event starts it afresh.
    assert store.apply(ev(leg, "ringing")).status == "ringing"


def test_purge_keeps_retained_legs(make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    gone_live, gone_ended, kept = sid(), sid(), sid()
    store.apply(ev(gone_live, "ringing"))
    store.apply(ev(gone_ended, "completed"))
    clock.advance(300)
    store.apply(ev(kept, "in-progress", from_="client:alice", direction="inbound"))
    clock.advance(301)
    purged = store.purge()
    assert isinstance(purged, int) and purged >= 0
    assert store.purge() == 0
    assert store.get(gone_live) is None and store.get(gone_ended) is None
    assert store.get(kept) is not None
    assert [[leg.call_sid for leg in call] for call in store.live_calls()] == [[kept]]


def test_a_second_store_on_the_same_registry_sees_the_legs(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    scenario = Scenario()
    apply_all(first, scenario.events)
    check_state(second, scenario)


events_for_one_leg = st.lists(
    st.builds(
        dict,
        status=st.sampled_from(["queued", "initiated", "ringing", "in-progress",
                                "completed", "busy", "no-answer", "canceled", "failed"]),
        from_=st.sampled_from([None, "client:alice", "+15550001111", "client:carol"]),
        to=st.sampled_from([None, "client:bob", "+15550002222"]),
        direction=st.sampled_from([None, "inbound", "outbound-dial", "outbound-api"]),
        child=st.booleans(),
    ),
    min_size=1, max_size=8,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=events_for_one_leg)
def test_stored_leg_is_the_fold_of_its_events(make_store: StoreFactory, clock: FakeClock,
                                             events: list[dict[str, Any]]) -> None:
    store = make_store(clock=clock)
    leg_sid, parent = sid(), sid()
    expected: Leg | None = None
    for attrs in events:
        child = attrs.pop("child")
        event = ev(leg_sid, parent_sid=parent if child else None, **attrs)
        clock.advance(1)
        expected = merge(expected, event, clock())
        assert store.apply(event) == expected
    assert expected is not None
    assert store.get(leg_sid) == expected
    if expected.identity:  # other examples' legs may share the identity
        assert (expected in store.live_sdk_legs(expected.identity)) == expected.is_live
    roots = {call[0].root_sid for call in store.live_calls()}
    assert (expected.root_sid in roots) == (not expected.is_ended)
    assert expected in store.call_legs(expected.root_sid)


# --- concurrency: several threads and processes on one registry ----------------------------

def shuffled_chunks(events: list[LegEvent], n: int, seed: int) -> list[list[LegEvent]]:
    """Every event twice, shuffled, dealt to n workers."""
    doubled = events * 2
    random.Random(seed).shuffle(doubled)
    return [doubled[i::n] for i in range(n)]


def lockstep_chunks(n_legs: int, n: int) -> tuple[list[str], list[list[LegEvent]]]:
    """Legs whose attributes arrive one per event, every event once, dealt so that the n
    workers hit the same leg at the same moment: a lost update would show."""
    sids = [sid() for _ in range(n_legs)]
    per_leg = [
        [ev(leg, "queued", from_=f"client:racer{k}"), ev(leg, "queued", to="+15550001111"),
         ev(leg, "queued", direction="inbound"), ev(leg, "queued", account_sid="AC" + "3" * 32),
         ev(leg, "in-progress"), ev(leg, "queued", parent_sid=sids[0] if k else None)]
        for k, leg in enumerate(sids)
    ]
    return sids, [[e for events in per_leg for e in events[i::n]] for i in range(n)]


def check_lockstep(store: LegStore, sids: list[str]) -> None:
    for k, leg_sid in enumerate(sids):
        leg = store.get(leg_sid)
        assert leg is not None
        assert (leg.status, leg.from_, leg.to, leg.direction, leg.account_sid, leg.identity) \
            == ("in-progress", f"client:racer{k}", "+15550001111", "inbound", "AC" + "3" * 32,
                f"racer{k}"), leg
        assert leg.parent_sid == (sids[0] if k else None)
        assert store.live_sdk_legs(f"racer{k}") == [leg]
    legs = [leg.call_sid for leg in store.call_legs(sids[0])]
    assert legs[0] == sids[0] and sorted(legs[1:]) == sorted(sids[1:])


def run_threads(target: Callable[[list[LegEvent]], None], chunks: list[list[LegEvent]]) -> None:
    barrier = threading.Barrier(len(chunks))
    errors: list[BaseException] = []

    def work(chunk: list[LegEvent]) -> None:
        try:
            barrier.wait()
            target(chunk)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def _process_worker(spec: tuple[str, str, str], events: list[LegEvent], barrier: Any) -> None:
    """Runs in a spawned process: open the registry afresh and apply events."""
    kind, location, prefix = spec
    store: LegStore = (SQLiteStore(SQLiteDatabase(location), Retention()) if kind == "sqlite"
                    else RedisStore(RedisDatabase(location), Retention(), prefix=prefix))
    store.ping()  # connect before the start line, so the workers really start together
    barrier.wait(timeout=60)
    apply_all(store, events)
    store.close()


def run_processes(spec: tuple[str, str, str], chunks: list[list[LegEvent]]) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(chunks))
    procs = [ctx.Process(target=_process_worker, args=(spec, chunk, barrier))
             for chunk in chunks]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_concurrent_threads_end_in_the_in_order_state(make_store: StoreFactory,
                                                      seed: int) -> None:
    store = make_store()
    scenarios = [Scenario(str(n)) for n in range(4)]
    events = [e for s in scenarios for e in s.events]
    run_threads(lambda chunk: apply_all(store, chunk), shuffled_chunks(events, 8, seed))
    check_state(store, *scenarios)


def test_concurrent_processes_end_in_the_in_order_state(make_store: StoreFactory) -> None:
    store = make_store()
    scenarios = [Scenario(str(n)) for n in range(4)]
    run_processes(make_store.spec,
                  shuffled_chunks([e for s in scenarios for e in s.events], 4, seed=7))
    check_state(store, *scenarios)


def test_threads_racing_on_one_leg_lose_no_update(make_store: StoreFactory) -> None:
    store = make_store()
    sids, chunks = lockstep_chunks(150, 6)
    run_threads(lambda chunk: apply_all(store, chunk), chunks)
    check_lockstep(store, sids)


def test_processes_racing_on_one_leg_lose_no_update(make_store: StoreFactory) -> None:
    store = make_store()
    sids, chunks = lockstep_chunks(150, 4)
    run_processes(make_store.spec, chunks)
    check_lockstep(store, sids)


# --- Redis specifics -----------------------------------------------------------------------

def prefix_ttls(client: redis.Redis, prefix: str) -> dict[str, int]:
    return {key: client.pttl(key) for key in client.scan_iter(match=f"{prefix}*")}


def assert_every_key_expires(client: redis.Redis, prefix: str) -> None:
    ttls = prefix_ttls(client, prefix)
    assert ttls, "the scenario wrote nothing?"
    assert all(ttl > 0 for ttl in ttls.values()), {k: t for k, t in ttls.items() if t <= 0}
    assert all(client.ttl(key) != -1 for key in ttls)
    # An index lives at least as long as each member's leg.
    for key, ttl in ttls.items():
        if client.type(key) == "zset":
            for member in client.zrange(key, 0, -1):
                leg_ttl = ttls.get(f"{prefix}leg:{member}", 0)
                assert ttl >= leg_ttl - 50, (key, member)


def redis_scenario(store: LegStore, clock: FakeClock) -> None:
    scenario = Scenario()
    apply_all(store, scenario.events)
    clock.advance(601)  # every leg runs out; the ended ones leave tombstones, bob's live one not
    recycled = scenario.c2  # ...so it comes back, under another parent and identity
    apply_all(store, [
        ev(recycled, "ringing", parent_sid=scenario.p3, to="client:dave"),
        ev(scenario.c1, "ringing", parent_sid=scenario.p2, to="client:dave"),  # stays ended
        ev(sid(), "completed", parent_sid=scenario.p2),
    ])
    store.purge()


@pytest.mark.redis
@pytest.mark.parametrize("expire_gt", [True, False], ids=["expire-gt", "no-gt"])
def test_redis_never_holds_a_key_without_ttl(redis_factory: StoreFactory,
                                             redis_client: redis.Redis, clock: FakeClock,
                                             expire_gt: bool) -> None:
    store = redis_factory(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    assert isinstance(store, RedisStore)
    store.ping()
    if not expire_gt:  # as on Redis < 7, which lacks EXPIRE NX/GT
        client, _ = store._redis()
        store._gt = {id(client): False}
    redis_scenario(store, clock)
    assert_every_key_expires(redis_client, redis_factory.prefix)
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


def assert_unavailable_quickly(store: LegStore, within_s: float = 2.5) -> None:
    for call in redis_calls(store):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught:
            call()
        assert time.monotonic() - started < within_s
        assert "s3cret" not in caught.value.message and "127.0.0.1" not in caught.value.message


def test_redis_outage_raises_store_unavailable_quickly() -> None:
    store = RedisStore(RedisDatabase(f"redis://:s3cret@127.0.0.1:{free_port()}/0"), Retention())
    assert_unavailable_quickly(store, within_s=1.0)
    store.close()


def test_redis_that_hangs_times_out() -> None:
    with socket_that_never_answers() as port:
        store = RedisStore(RedisDatabase(f"redis://:s3cret@127.0.0.1:{port}/0"), Retention())
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.ping()
        assert time.monotonic() - started < 3.0
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
        assert_unavailable_quickly(store)
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
