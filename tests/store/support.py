"""How the store tests open adapters: store factories (SQLite, Redis on one server, a cluster or
Sentinel, PostgreSQL, in memory), Redis prefixes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis

from services.legs.rules import Retention
from services.store.conferences import ConferenceStore
from services.store.history import MessageHistory
from services.store.legs import LegStore
from services.store.postgres.conferences import PostgresConferenceStore
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.history import PostgresMessageHistory
from services.store.postgres.legs import PostgresStore
from services.store.redis.conferences import RedisConferenceStore
from services.store.redis.database import RedisDatabase
from services.store.redis.history import RedisMessageHistory
from services.store.redis.legs import RedisStore
from services.store.redis.topology import RedisTopology, parse_sentinels
from services.store.sqlite.conferences import SQLiteConferenceStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.history import SQLiteMessageHistory
from services.store.sqlite.legs import SQLiteStore
from tests.support.memory_store import MemoryLegStore, MemoryMessageHistory, MemoryRegistry


class StoreFactory:
    """Opens stores of one adapter on one shared location; closes them at teardown.

    `spec` is a picklable (kind, location, prefix) that another process can open again.
    """

    def __init__(self, kind: str, location: str, prefix: str = "") -> None:
        self.kind, self.location, self.prefix = kind, location, prefix
        self.opened: list[LegStore | ConferenceStore | MessageHistory] = []
        self.memory = MemoryRegistry()

    @property
    def spec(self) -> tuple[str, str, str]:
        if self.kind == "memory":
            raise ValueError("the in-memory store lives in one process: use make_shared_store")
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

    def conferences(self, retention: Retention | None = None,
                    clock: Callable[[], float] = time.time) -> ConferenceStore:
        """A conference store on the same database (file, Redis prefix, PostgreSQL schema) as
        the leg stores."""
        kind, location, prefix = self.spec  # the in-memory kind has none: it skips here
        store: ConferenceStore
        if kind == "sqlite":
            store = SQLiteConferenceStore(SQLiteDatabase(location), retention or Retention(),
                                          clock)
        elif kind == "postgres":
            store = PostgresConferenceStore(PostgresDatabase(location), retention or Retention(),
                                            clock)
        else:
            store = RedisConferenceStore(redis_database(kind, location),
                                         retention or Retention(), clock, prefix=prefix)
        self.opened.append(store)
        return store

    def history(self, retention: Retention | None = None,
                clock: Callable[[], float] = time.time) -> MessageHistory:
        """A message history on the same database (file, Redis prefix, PostgreSQL schema,
        memory) as the legs."""
        store: MessageHistory
        if self.kind == "memory":
            store = MemoryMessageHistory(retention, clock, self.memory)
        elif self.kind == "sqlite":
            store = SQLiteMessageHistory(SQLiteDatabase(self.location), retention or Retention(),
                                         clock)
        elif self.kind == "postgres":
            store = PostgresMessageHistory(PostgresDatabase(self.location),
                                           retention or Retention(), clock)
        else:
            store = RedisMessageHistory(redis_database(self.kind, self.location),
                                        retention or Retention(), clock, prefix=self.prefix)
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
    if kind == "postgres":
        return PostgresStore(PostgresDatabase(location), retention, clock)
    return RedisStore(redis_database(kind, location), retention, clock, prefix=prefix)


REDIS_KINDS = ("redis", "redis-cluster", "redis-sentinel")


def redis_location(kind: str, url: str, sentinels: str = "", master: str = "") -> str:
    """A picklable location for a Redis kind: the URL, and for Sentinel its addresses."""
    return f"{url}|{sentinels}|{master}" if kind == "redis-sentinel" else url


def redis_database(kind: str, location: str) -> RedisDatabase:
    """The RedisDatabase a Redis kind's location names: one server, a cluster, Sentinel."""
    if kind == "redis-cluster":
        return RedisDatabase(location, RedisTopology("cluster"))
    if kind == "redis-sentinel":
        url, sentinels, master = location.split("|")
        return RedisDatabase(url, RedisTopology("sentinel", parse_sentinels(sentinels), master))
    return RedisDatabase(location)


def unique_prefix() -> str:
    return f"callrelay-test:{uuid.uuid4().hex}:"


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for key in keys:  # one by one: on a cluster they sit in many slots
        client.delete(key)
