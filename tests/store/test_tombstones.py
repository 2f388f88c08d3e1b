"""Tombstones, run against every adapter: an ended leg is never revived, even after retention."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import redis

from services.legs.model import TERMINAL, LegEvent
from services.legs.rules import Retention
from services.store.redis.legs import RedisStore

if TYPE_CHECKING:
    from services.store.legs import LegStore
    from tests.store.support import StoreFactory
    from tests.support.clock import FakeClock

RETENTION = Retention(leg_retention_s=60, max_call_duration_s=600)
TOMBSTONE_S = RETENTION.tombstone_s  # 7 days with these values


def sid() -> str:
    return "CA" + uuid.uuid4().hex


def ev(call_sid: str, status: str, **attrs: Any) -> LegEvent:
    return LegEvent(call_sid=call_sid, status=status, **attrs)


def sdk_call_that_ended(store: LegStore, clock: FakeClock, end: str = "completed",
                        identity: str = "alice") -> tuple[str, str, float]:
    """A device calls a phone, both legs end; returns (parent, child, when the parent ended)."""
    parent, child = sid(), sid()
    store.apply(ev(parent, "ringing", from_=f"client:{identity}", to="+15550001111",
                   direction="inbound"))
    store.apply(ev(child, "ringing", parent_sid=parent, to="+15550001111"))
    store.apply(ev(child, "in-progress", parent_sid=parent))
    clock.advance(30)
    store.apply(ev(child, "completed", parent_sid=parent))
    ended = store.apply(ev(parent, end))
    assert ended.ended_at is not None
    return parent, child, ended.ended_at


def replay_answer(store: LegStore, parent: str, child: str, identity: str = "alice") -> None:
    """Every non-terminal callback of the call again, as an attacker (or a retry) would."""
    for leg_sid, status in ((parent, "ringing"), (parent, "in-progress"),
                            (child, "ringing"), (child, "in-progress")):
        again = store.apply(ev(leg_sid, status, from_=f"client:{identity}", to="+15550001111",
                               direction="inbound", parent_sid=None if leg_sid == parent
                               else parent))
        assert again.is_ended and not again.is_live, (leg_sid, status, again)


def assert_forgotten_and_not_live(store: LegStore, parent: str, child: str,
                                  identity: str = "alice") -> None:
    assert store.get(parent) is None and store.get(child) is None
    assert store.call_legs(parent) == []
    assert store.live_sdk_legs(identity) == []
    assert store.live_calls() == []


@pytest.mark.parametrize("end", sorted(TERMINAL))
def test_a_replay_after_retention_does_not_revive_the_leg(make_store: StoreFactory,
                                                         clock: FakeClock, end: str) -> None:
    store = make_store(RETENTION, clock)
    parent, child, ended_at = sdk_call_that_ended(store, clock, end)
    clock.advance(61)  # the legs' retention has run out: they are forgotten
    assert_forgotten_and_not_live(store, parent, child)
    replay = store.apply(ev(parent, "in-progress", from_="client:alice", direction="inbound"))
    # The leg as its tombstone describes it: ended, when it ended, nothing more.
    assert (replay.call_sid, replay.status, replay.ended_at) == (parent, end, ended_at)
    assert not replay.is_live and not replay.is_sdk
    replay_answer(store, parent, child)
    assert_forgotten_and_not_live(store, parent, child)


def test_purge_drops_the_rows_but_not_the_tombstones(make_store: StoreFactory,
                                                    clock: FakeClock) -> None:
    store = make_store(RETENTION, clock)
    parent, child, _ = sdk_call_that_ended(store, clock)
    clock.advance(61)
    assert store.purge() >= 0
    replay_answer(store, parent, child)
    assert_forgotten_and_not_live(store, parent, child)
    # A terminal callback again (a retry, or a reconciliation) records nothing either.
    assert store.apply(ev(child, "completed", parent_sid=parent, to="+15550001111")).is_ended
    assert_forgotten_and_not_live(store, parent, child)


def test_tombstones_outlive_the_legs_and_then_expire(make_store: StoreFactory,
                                                    clock: FakeClock) -> None:
    store = make_store(RETENTION, clock)
    parent, child, ended_at = sdk_call_that_ended(store, clock)
    clock.now = ended_at + TOMBSTONE_S - 1
    store.purge()
    replay_answer(store, parent, child)
    assert_forgotten_and_not_live(store, parent, child)
    clock.now = ended_at + TOMBSTONE_S + 1
    store.purge()
    # Bounded: after tombstone_s the SID is unknown (and the Timestamp guard takes over).
    assert store.apply(ev(parent, "ringing")).status == "ringing"
    assert store.get(parent) is not None


def test_ended_legs_stay_readable_while_retained(make_store: StoreFactory,
                                                 clock: FakeClock) -> None:
    store = make_store(RETENTION, clock)
    parent, child, ended_at = sdk_call_that_ended(store, clock)
    clock.advance(59)
    replay_answer(store, parent, child)
    got = store.get(parent)
    assert got is not None and got.status == "completed" and got.ended_at == ended_at
    assert got.identity == "alice" and got.from_ == "client:alice"  # the full leg, not a stub
    assert [leg.call_sid for leg in store.call_legs(parent)] == [parent, child]
    assert store.live_sdk_legs("alice") == [] and store.live_calls() == []


@pytest.mark.parametrize("purged", [False, True])
def test_a_leg_whose_end_was_never_reported_is_buried_when_it_expires(
        make_store: StoreFactory, clock: FakeClock, purged: bool) -> None:
    store = make_store(RETENTION, clock)
    parent, child = sid(), sid()
    store.apply(ev(parent, "ringing", from_="client:alice", to="+15550001111",
                   direction="inbound"))
    clock.advance(30)
    store.apply(ev(child, "in-progress", parent_sid=parent, to="+15550001111"))
    store.apply(ev(parent, "in-progress"))
    last_news = clock()
    clock.advance(601)  # MAX_CALL_DURATION_S without news: forgotten, and buried
    if purged:
        assert store.purge() >= 0
    assert_forgotten_and_not_live(store, parent, child)
    replay = store.apply(ev(parent, "ringing", from_="client:alice", direction="inbound"))
    # Ended as far as callrelay knows, when it was forgotten.
    assert (replay.call_sid, replay.status, replay.ended_at) == (parent, "completed",
                                                                 last_news + 600)
    assert not replay.is_live and replay.forgotten
    replay_answer(store, parent, child)
    assert_forgotten_and_not_live(store, parent, child)
    # Bounded like any tombstone: tombstone_s after it was forgotten, the SID is unknown.
    clock.now = last_news + 600 + TOMBSTONE_S + 1
    store.purge()
    assert store.apply(ev(parent, "ringing")).status == "ringing"


def test_a_tombstone_is_written_when_the_leg_ends(make_store: StoreFactory,
                                                  clock: FakeClock) -> None:
    """Whichever store instance (worker) applied the end, every other one sees the tombstone."""
    first, second = make_store(RETENTION, clock), make_store(RETENTION, clock)
    leg = sid()
    first.apply(ev(leg, "in-progress", from_="client:alice", direction="inbound"))
    first.apply(ev(leg, "no-answer"))
    clock.advance(61)
    assert second.apply(ev(leg, "in-progress")).status == "no-answer"
    assert second.live_sdk_legs("alice") == [] and first.get(leg) is None


def test_replays_racing_the_end_never_leave_a_live_leg(make_store: StoreFactory,
                                                       clock: FakeClock) -> None:
    store = make_store(RETENTION, clock)
    legs = [sid() for _ in range(40)]
    for leg in legs:
        store.apply(ev(leg, "ringing", from_="client:racer", direction="inbound"))
    ends = [ev(leg, "completed") for leg in legs]
    replays = [ev(leg, "in-progress") for leg in legs]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(events: list[LegEvent]) -> None:
        try:
            barrier.wait()
            for event in events:
                store.apply(event)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(chunk,))
               for chunk in (ends, replays, replays[::-1], ends[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    clock.advance(61)
    for leg in legs:
        assert store.apply(ev(leg, "in-progress")).status == "completed"
    assert store.live_sdk_legs("racer") == [] and store.live_calls() == []


# --- adapter specifics: tombstones are bounded -----------------------------------------------

def test_sqlite_purge_deletes_expired_tombstones(sqlite_factory: StoreFactory,
                                                 clock: FakeClock) -> None:
    store = sqlite_factory(RETENTION, clock)
    sdk_call_that_ended(store, clock)
    with sqlite3.connect(sqlite_factory.location) as db:
        assert db.execute("SELECT count(*) FROM tombstones").fetchone() == (2,)
    clock.advance(TOMBSTONE_S + 1)
    store.purge()
    with sqlite3.connect(sqlite_factory.location) as db:
        assert db.execute("SELECT count(*) FROM tombstones").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM legs").fetchone() == (0,)


def test_sqlite_purge_buries_ended_legs_stored_before_tombstones(sqlite_factory: StoreFactory,
                                                                 clock: FakeClock) -> None:
    store = sqlite_factory(RETENTION, clock)
    parent, child, _ = sdk_call_that_ended(store, clock)
    with sqlite3.connect(sqlite_factory.location) as db:
        db.execute("DELETE FROM tombstones")  # as a database written by an older callrelay
    clock.advance(61)
    store.purge()
    replay_answer(store, parent, child)
    assert_forgotten_and_not_live(store, parent, child)


@pytest.mark.redis
def test_redis_tombstones_carry_a_ttl(redis_factory: StoreFactory, redis_client: redis.Redis,
                                      clock: FakeClock) -> None:
    store = redis_factory(RETENTION, clock)
    assert isinstance(store, RedisStore)
    parent, child, _ = sdk_call_that_ended(store, clock)
    prefix = redis_factory.prefix
    ttls = {key: redis_client.pttl(key) for key in redis_client.scan_iter(match=f"{prefix}*")}
    assert all(ttl > 0 for ttl in ttls.values()), ttls  # every key, tombstones included
    for leg in (parent, child):
        tomb = ttls[f"{prefix}ended:{leg}"]
        assert TOMBSTONE_S * 1000 - 60_000 < tomb <= TOMBSTONE_S * 1000
        # A tombstone outlives its leg's hash.
        assert tomb > ttls[f"{prefix}leg:{leg}"]
