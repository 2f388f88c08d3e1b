"""Fixtures for the store contract: every test runs against each adapter (SQLite, Redis) and
against the in-memory store the unit tests use, which proves that fake faithful."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.legs.rules import Retention
from services.store.legs import LegStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from tests.redis_support import redis_url
from tests.support.clock import FakeClock
from tests.support.memory_store import MemoryLegStore, MemoryRegistry


class StoreFactory:
    """Opens stores of one adapter on one shared location; closes them at teardown.

    `spec` is a picklable (kind, location, prefix) that another process can open again.
    """

    def __init__(self, kind: str, location: str, prefix: str = "") -> None:
        self.kind, self.location, self.prefix = kind, location, prefix
        self.opened: list[LegStore] = []
        self.memory = MemoryRegistry()

    @property
    def spec(self) -> tuple[str, str, str]:
        if self.kind == "memory":
            pytest.skip("the in-memory store lives in one process")
        return (self.kind, self.location, self.prefix)

    def __call__(self, retention: Retention | None = None,
                 clock: Callable[[], float] = time.time) -> LegStore:
        store: LegStore
        if self.kind == "memory":
            store = MemoryLegStore(retention, clock, self.memory)
        else:
            store = open_spec(self.spec, retention or Retention(), clock)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()


def open_spec(spec: tuple[str, str, str], retention: Retention,
              clock: Callable[[], float] = time.time) -> LegStore:
    """A store from a StoreFactory.spec (also used by worker processes)."""
    kind, location, prefix = spec
    if kind == "sqlite":
        return SQLiteStore(SQLiteDatabase(location), retention, clock)
    return RedisStore(RedisDatabase(location), retention, clock, prefix=prefix)


def unique_prefix() -> str:
    return f"callrelay-test:{uuid.uuid4().hex}:"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A raw client on the test Redis (skips without one), for looking under the adapter."""
    client = redis.Redis.from_url(redis_url(), decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the adapter under test, all on the same registry."""
    if request.param in ("sqlite", "memory"):
        factory = StoreFactory(request.param, str(tmp_path / "legs.sqlite3"))
        yield factory
        factory.close()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    factory = StoreFactory("redis", redis_url(), unique_prefix())
    yield factory
    factory.close()
    delete_prefix(client, factory.prefix)


@pytest.fixture
def redis_factory(redis_client: redis.Redis) -> Iterator[StoreFactory]:
    """Redis stores only, for the Redis-specific tests; keys deleted afterwards."""
    factory = StoreFactory("redis", redis_url(), unique_prefix())
    yield factory
    factory.close()
    delete_prefix(redis_client, factory.prefix)
