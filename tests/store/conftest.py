"""Fixtures for the store tests: every contract test runs against each adapter (SQLite, Redis,
PostgreSQL) and against the in-memory store the unit tests use, which proves that fake faithful."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.store.support import StoreFactory, delete_prefix, unique_prefix
from tests.support.clock import FakeClock
from tests.support.postgres_server import temporary_schema
from tests.support.redis_server import redis_url


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


POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), POSTGRES,
                        "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of the adapter under test, all on the same registry."""
    yield from _factories(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis), POSTGRES])
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
