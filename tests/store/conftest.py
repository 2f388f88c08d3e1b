"""Fixtures for the store tests: every contract test runs against each adapter (SQLite, Redis on
one server, on a Redis Cluster and through Sentinel, PostgreSQL) and against the in-memory
store the unit tests use, which proves that fake faithful."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.store.support import (
    StoreFactory,
    delete_prefix,
    redis_database,
    redis_location,
    unique_prefix,
)
from tests.support.clock import FakeClock
from tests.support.postgres_server import temporary_schema
from tests.support.redis_server import redis_url
from tests.support.redis_topologies import LocalCluster, LocalSentinel


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A raw client on the test Redis (skips without one), for looking under the adapter."""
    client = redis.Redis.from_url(redis_url(), decode_responses=True)
    yield client
    client.close()


def _factories(kind: str, request: pytest.FixtureRequest,
               tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of `kind` on a fresh file, Redis prefix or PostgreSQL schema; closed (and its
    keys or schema deleted) after."""
    if kind == "postgres":
        database: str = request.getfixturevalue("postgres_database")
        with temporary_schema(database) as url:
            factory = StoreFactory("postgres", url)
            yield factory
            factory.close()
        return
    if kind in ("redis-cluster", "redis-sentinel"):
        location = _topology_location(kind, request)
        factory = StoreFactory(kind, location, unique_prefix())
        yield factory
        factory.close()
        database = redis_database(kind, location)
        delete_prefix(database.client(), factory.prefix)
        database.close()
        return
    if kind != "redis":
        factory = StoreFactory(kind, str(tmp_path / "legs.sqlite3"))
        yield factory
        factory.close()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    factory = StoreFactory("redis", redis_url(), unique_prefix())
    yield factory
    factory.close()
    delete_prefix(client, factory.prefix)


def _topology_location(kind: str, request: pytest.FixtureRequest) -> str:
    """The session's cluster or Sentinel deployment (started on first use), as a location."""
    if kind == "redis-cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return redis_location(kind, cluster.url)
    sentinel: LocalSentinel = request.getfixturevalue("redis_sentinel")
    return redis_location(kind, sentinel.url, sentinel.addresses, sentinel.MASTER)


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)
# Redis beyond one server: the same contract on a Redis Cluster and through Sentinel.
CLUSTER = pytest.param("redis-cluster", marks=pytest.mark.redis)
SENTINEL = pytest.param("redis-sentinel", marks=pytest.mark.redis)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), CLUSTER,
                        SENTINEL, POSTGRES, "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the adapter under test, all on the same registry."""
    yield from _factories(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), CLUSTER,
                        SENTINEL, POSTGRES])
def make_shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """The adapters that several processes share (not the in-memory fake), for the tests that
    fork or hold a database of their own (conferences, process races)."""
    yield from _factories(request.param, request, tmp_path)


@pytest.fixture
def sqlite_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """SQLite stores only, for the SQLite-specific tests."""
    yield from _factories("sqlite", request, tmp_path)


@pytest.fixture
def redis_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Redis stores only, for the Redis-specific tests; keys deleted afterwards."""
    yield from _factories("redis", request, tmp_path)


@pytest.fixture
def postgres_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """PostgreSQL stores only, on a schema of their own, for the PostgreSQL-specific tests."""
    yield from _factories("postgres", request, tmp_path)
