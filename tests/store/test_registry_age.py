"""The registry's age: how long it has been recording legs, so callrelay knows what it may miss."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis

from services.legs.model import LegEvent
from services.legs.rules import Retention
from services.store.redis.registry import MARKER_TTL_S
from tests.store.support import StoreFactory, delete_prefix

if TYPE_CHECKING:
    from tests.support.clock import FakeClock

SDK_LEG = LegEvent("CA" + "7" * 32, "ringing", from_="client:alice", direction="inbound")


def test_a_new_registry_is_0_seconds_old_and_ages_with_the_clock(
        make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(clock=clock)
    assert store.registry_age() == 0
    clock.advance(90)
    store.apply(SDK_LEG)
    clock.advance(10)
    assert store.registry_age() == 100


def test_every_worker_and_a_restart_on_the_same_data_share_the_start(
        make_store: StoreFactory, clock: FakeClock) -> None:
    first = make_store(clock=clock)
    assert first.registry_age() == 0
    clock.advance(5 * 3600)
    first.close()
    again = make_store(clock=clock)  # a restart that kept the file (or the Redis data)
    assert again.registry_age() == first.registry_age() == 5 * 3600


def test_a_clock_stepping_back_never_makes_the_age_negative(
        make_store: StoreFactory, clock: FakeClock) -> None:
    store = make_store(clock=clock)
    store.registry_age()
    clock.advance(-30)
    assert store.registry_age() == 0


def test_sqlite_on_a_new_disk_starts_again(tmp_path: Path, clock: FakeClock) -> None:
    old = StoreFactory("sqlite", str(tmp_path / "before.sqlite3"))
    new = StoreFactory("sqlite", str(tmp_path / "after-restart.sqlite3"))
    try:
        old(clock=clock).apply(SDK_LEG)
        clock.advance(3600)
        # The platform restarted the dyno on a fresh disk: the same path, empty, or another.
        store = new(clock=clock)
        assert store.registry_age() == 0 and store.live_sdk_legs("alice") == []
        assert old(clock=clock).registry_age() == 3600
    finally:
        old.close()
        new.close()


def marker(factory: StoreFactory) -> str:
    return f"{factory.prefix}registry:started_at"


@pytest.mark.redis
def test_redis_losing_its_data_starts_again(redis_factory: StoreFactory,
                                            redis_client: redis.Redis, clock: FakeClock) -> None:
    store = redis_factory(clock=clock)
    store.apply(SDK_LEG)
    assert store.registry_age() == 0
    clock.advance(7200)
    assert store.registry_age() == 7200
    delete_prefix(redis_client, redis_factory.prefix)  # FLUSHALL, or a restart without AOF
    assert store.registry_age() == 0
    clock.advance(60)
    assert store.registry_age() == 60


@pytest.mark.redis
def test_redis_marker_expires_like_every_key_and_reading_renews_it(
        redis_factory: StoreFactory, redis_client: redis.Redis, clock: FakeClock) -> None:
    store = redis_factory(Retention(leg_retention_s=60, max_call_duration_s=600), clock)
    store.apply(SDK_LEG)
    store.registry_age()
    keys = list(redis_client.scan_iter(match=f"{redis_factory.prefix}*"))
    assert marker(redis_factory) in keys
    assert all(redis_client.pttl(key) > 0 for key in keys), {
        key: redis_client.pttl(key) for key in keys}
    redis_client.pexpire(marker(redis_factory), 5000)  # as if a month had nearly passed
    clock.advance(100)
    assert store.registry_age() == 100  # still the first start...
    assert redis_client.pttl(marker(redis_factory)) > (MARKER_TTL_S - 60) * 1000  # ...renewed
