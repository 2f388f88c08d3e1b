"""STORE_URL: the one place that says which store a URL names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict

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
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            # libpq's message may quote the URL, password and all: say only what is wrong.
            raise ValueError("libpq cannot read this PostgreSQL URL") from None
        return StoreLocation("postgres", url)
    raise ValueError("expected sqlite:///path, redis://host:port/db or "
                     "postgresql://user:password@host:port/database")
