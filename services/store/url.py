"""STORE_URL: the one place that says which store a URL names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

SQLITE_PREFIX = "sqlite:///"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# postgres:// is the scheme Heroku writes in DATABASE_URL; libpq takes both.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True)
class StoreLocation:
    """Which adapter a store URL names, and where it keeps its data."""

    kind: Literal["sqlite", "redis", "postgres"]
    # A file path for SQLite; the whole URL for Redis and PostgreSQL (it may hold a password:
    # never log it).
    target: str


def parse_store_url(url: str) -> StoreLocation:
    """`sqlite:///path`, `redis://…`/`rediss://…`/`unix://…` or `postgresql://…`/`postgres://…`;
    ValueError for anything else."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        return StoreLocation("sqlite", url.removeprefix(SQLITE_PREFIX))
    if url.startswith(REDIS_SCHEMES):
        return StoreLocation("redis", url)
    if url.startswith(POSTGRES_SCHEMES):
        # Checked without psycopg: this runs in gunicorn's master (the configuration check),
        # and psycopg picks how it waits on sockets when imported, which must happen in the
        # workers, after gevent has patched them (services/store/postgres/database.py).
        try:
            urlsplit(url).port  # noqa: B018  (reading it checks it)
        except ValueError:
            raise ValueError("the PostgreSQL URL's port is not a number") from None
        return StoreLocation("postgres", url)
    raise ValueError("expected sqlite:///path, redis://host:port/db or "
                     "postgresql://user:password@host:port/database")
