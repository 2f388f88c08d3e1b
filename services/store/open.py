"""Opens the store a STORE_URL names: one database per URL, shared by legs, conferences, outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.stores import DEFAULT_POOL_SIZE
from services.legs.rules import Retention
from services.store.conferences import ConferenceStore
from services.store.history import MessageHistory
from services.store.legs import LegStore
from services.store.outbox import ForwardingStore
from services.store.url import parse_store_url

if TYPE_CHECKING:
    from services.store.redis.database import RedisDatabase
    from services.store.redis.topology import RedisTopology

# Each adapter is imported when its URL is opened, not here: a worker on SQLite never loads the
# Redis and PostgreSQL clients (about 17 MiB of a worker's memory, BENCHMARKS.md).


@dataclass(frozen=True)
class Stores:
    """The leg and conference registries, the outbox and the calls' message history."""

    legs: LegStore
    outbox: ForwardingStore
    conferences: ConferenceStore
    # None: an adapter without one (no history is kept, GET /calls/<sid>/messages says so).
    history: MessageHistory | None = None
    # The Redis deployment they share, if Redis (its unreplicated writes are counted).
    redis: RedisDatabase | None = None

    def close(self) -> None:
        """Release the database's connections (every adapter shares them)."""
        self.legs.close()


def open_stores(url: str, retention: Retention, pool_size: int = DEFAULT_POOL_SIZE,
                topology: RedisTopology | None = None) -> Stores:
    """The adapters for a `sqlite:///path`, `redis://…` or `postgresql://…` URL, sharing one
    database; `pool_size` is PostgreSQL's connections per process, `topology` how a Redis URL
    is reached (one server, a cluster, Sentinel)."""
    location = parse_store_url(url)
    if location.kind == "sqlite":
        from services.store.sqlite.conferences import SQLiteConferenceStore
        from services.store.sqlite.database import SQLiteDatabase
        from services.store.sqlite.history import SQLiteMessageHistory
        from services.store.sqlite.legs import SQLiteStore
        from services.store.sqlite.outbox import SQLiteOutbox

        sqlite = SQLiteDatabase(location.target)
        return Stores(SQLiteStore(sqlite, retention), SQLiteOutbox(sqlite),
                      SQLiteConferenceStore(sqlite, retention),
                      SQLiteMessageHistory(sqlite, retention))
    if location.kind == "postgres":
        from services.store.postgres.conferences import PostgresConferenceStore
        from services.store.postgres.database import PostgresDatabase
        from services.store.postgres.history import PostgresMessageHistory
        from services.store.postgres.legs import PostgresStore
        from services.store.postgres.outbox import PostgresOutbox

        postgres = PostgresDatabase(location.target, pool_size)
        return Stores(PostgresStore(postgres, retention), PostgresOutbox(postgres),
                      PostgresConferenceStore(postgres, retention),
                      PostgresMessageHistory(postgres, retention))
    from services.store.redis.conferences import RedisConferenceStore
    from services.store.redis.database import RedisDatabase
    from services.store.redis.history import RedisMessageHistory
    from services.store.redis.legs import RedisStore
    from services.store.redis.outbox import RedisOutbox

    redis = RedisDatabase(location.target, topology)
    return Stores(RedisStore(redis, retention), RedisOutbox(redis),
                  RedisConferenceStore(redis, retention), RedisMessageHistory(redis, retention),
                  redis)
