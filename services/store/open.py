"""Opens the store a STORE_URL names: one database per URL, shared by the leg store and outbox."""

from __future__ import annotations

from dataclasses import dataclass

from services.legs.rules import Retention
from services.store.legs import LegStore
from services.store.outbox import ForwardingStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.redis.outbox import RedisOutbox
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore
from services.store.sqlite.outbox import SQLiteOutbox
from services.store.url import parse_store_url


@dataclass(frozen=True)
class Stores:
    """The leg registry and the forwarding outbox, over one database."""

    legs: LegStore
    outbox: ForwardingStore

    def close(self) -> None:
        """Release the database's connections (both adapters share them)."""
        self.legs.close()


def open_stores(url: str, retention: Retention) -> Stores:
    """The adapters for a `sqlite:///path` or `redis://…` URL, sharing one database."""
    location = parse_store_url(url)
    if location.kind == "sqlite":
        sqlite = SQLiteDatabase(location.target)
        return Stores(SQLiteStore(sqlite, retention), SQLiteOutbox(sqlite))
    redis = RedisDatabase(location.target)
    return Stores(RedisStore(redis, retention), RedisOutbox(redis))
