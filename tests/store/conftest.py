"""Fixtures for the store contract: every test runs against each adapter (SQLite, Redis)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from services.legs.rules import Retention
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.store.redis.conferences import RedisConferenceStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.sqlite.conferences import SQLiteConferenceStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from tests.redis_support import redis_url


class FakeClock:
    """A clock the test moves by hand (the stores take `clock=`)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StoreFactory:
    """Opens stores of one adapter on one shared location; closes them at teardown.

    `spec` is a picklable (kind, location, prefix) that another process can open again.
    """

    def __init__(self, kind: str, location: str, prefix: str = "") -> None:
        self.kind, self.location, self.prefix = kind, location, prefix
        self.opened: list[LegStore | ConferenceStore] = []

    @property
    def spec(self) -> tuple[str, str, str]:
        return (self.kind, self.location, self.prefix)

    def __call__(self, retention: Retention | None = None,
                 clock: Callable[[], float] = time.time) -> LegStore:
        store = open_spec(self.spec, retention or Retention(), clock)
        self.opened.append(store)
        return store

    def conferences(self, retention: Retention | None = None,
                    clock: Callable[[], float] = time.time) -> ConferenceStore:
        """A conference store on the same database (file, or Redis prefix) as the leg stores."""
        kind, location, prefix = self.spec
        store: ConferenceStore
        if kind == "sqlite":
            store = SQLiteConferenceStore(SQLiteDatabase(location), retention or Retention(),
                                          clock)
        else:
            store = RedisConferenceStore(RedisDatabase(location), retention or Retention(),
                                         clock, prefix=prefix)
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


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the adapter under test, all on the same registry."""
    if request.param == "sqlite":
        factory = StoreFactory("sqlite", str(tmp_path / "legs.sqlite3"))
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
