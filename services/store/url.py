"""STORE_URL: the one place that says which store a URL names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SQLITE_PREFIX = "sqlite:///"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class StoreLocation:
    """Which adapter a store URL names, and where it keeps its data."""

    kind: Literal["sqlite", "redis"]
    # A file path for SQLite; the whole URL for Redis (it may hold a password: never log it).
    target: str


def parse_store_url(url: str) -> StoreLocation:
    """`sqlite:///path` or `redis://…`/`rediss://…`/`unix://…`; ValueError for anything else."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        return StoreLocation("sqlite", url.removeprefix(SQLITE_PREFIX))
    if url.startswith(REDIS_SCHEMES):
        return StoreLocation("redis", url)
    raise ValueError("expected sqlite:///path or redis://host:port/db")
