"""Bytes per call in each store: what a plan must hold (docs/sizing.md#bytes-per-call).

    python -m bench.footprint [--calls N] [--postgres URL] [--redis URL] [--redis-cluster URL]

Plays N phone-to-SDK calls (a parent and a child leg, each through its statuses, as the
webhooks bring them) into a fresh store through the store port, with a clock it moves by hand,
and measures the store at three moments: every call live; every call ended, while its legs are
retained (LEG_RETENTION_S); after the purge, when only the tombstones are left (7 days).
SQLite: the file's size once checkpointed and vacuumed. PostgreSQL: every callrelay_ relation
(tables, indexes, TOAST) in a database of its own on the server at --postgres, created and
dropped here, after VACUUM FULL: live rows only (the row versions that updates leave behind, until
autovacuum lets their space be reused, added about a third on this machine).
Redis (a server, or a Redis Cluster's node, holding nothing else: its memory is measured):
`used_memory` summed over the primaries; TTLs run on the server's own clock, so the legs'
expiry is played by deleting every key but the tombstones (`ended:`).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from redis.cluster import RedisCluster

from bench.workload import new_sid
from services.legs.model import LegEvent
from services.legs.rules import Retention
from services.store.legs import LegStore
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.legs import PostgresStore
from services.store.redis.database import RedisDatabase
from services.store.redis.legs import RedisStore
from services.store.redis.topology import RedisTopology
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore

RETENTION = Retention()
PHONE, NUMBER = "+15005550006", "+15005550001"


class Clock:
    """A clock moved by hand, so that retention passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def call_events(n: int) -> tuple[list[LegEvent], list[LegEvent]]:
    """A phone calls user-<n>'s SDK: the events that make it live, and those that end it."""
    parent, child, to = new_sid(), new_sid(), f"client:user-{n}"
    leg = {"from_": PHONE, "account_sid": "AC" + "0" * 32}
    live = [LegEvent(parent, "ringing", to=NUMBER, direction="inbound", **leg),
            LegEvent(child, "initiated", parent_sid=parent, to=to, direction="outbound-dial",
                     **leg),
            LegEvent(child, "ringing", parent_sid=parent, to=to, **leg),
            LegEvent(parent, "in-progress", to=NUMBER, **leg),
            LegEvent(child, "in-progress", parent_sid=parent, to=to, **leg)]
    ended = [LegEvent(child, "completed", parent_sid=parent, to=to, **leg),
             LegEvent(parent, "completed", to=NUMBER, **leg)]
    return live, ended


def measure(open_store: Callable[[Clock], LegStore], calls: int,
            size: Callable[[], int],
            expire: Callable[[], None] = lambda: None) -> list[tuple[str, float]]:
    """Bytes per call at each moment, the empty store's size taken off."""
    clock = Clock()
    legs = open_store(clock)
    try:
        legs.ping()
        empty = size()
        played = [call_events(n) for n in range(calls)]
        for live, _ in played:
            for event in live:
                legs.apply(event)
        moments = [("live", (size() - empty) / calls)]
        clock.now += 60
        for _, ended in played:
            for event in ended:
                legs.apply(event)
        moments.append(("ended, retained", (size() - empty) / calls))
        # Past the retention and the grace PostgreSQL's purge leaves after it (a minute).
        clock.now += RETENTION.leg_retention_s + 120
        while legs.purge():
            pass
        expire()
        moments.append(("tombstones only", (size() - empty) / calls))
        return moments
    finally:
        legs.close()


def sqlite_size(path: Path) -> Callable[[], int]:
    def size() -> int:
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db.execute("VACUUM")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
            return int(db.execute("PRAGMA page_count").fetchone()[0]) * int(page_size)
        finally:
            db.close()
    return size


def postgres_size(url: str) -> Callable[[], int]:
    def size() -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'callrelay%%' "
                "AND schemaname = current_schema()").fetchall()]
            for table in tables:
                conn.execute(sql.SQL("VACUUM FULL {}").format(sql.Identifier(table)))
            row = conn.execute("SELECT sum(pg_total_relation_size(quote_ident(tablename))) "
                               "FROM pg_tables WHERE tablename LIKE 'callrelay%%' "
                               "AND schemaname = current_schema()").fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    return size


def _data_memory(info: dict[str, Any]) -> int:
    """used_memory less what replication holds (the backlog fills up to its 1 MB as writes
    come, and the replicas' output buffers): the same with or without the data."""
    return int(info["used_memory"]) - int(info.get("mem_replication_backlog", 0)) \
        - int(info.get("mem_clients_slaves", 0))


def redis_size(db: RedisDatabase) -> Callable[[], int]:
    def size() -> int:
        if db.topology.cluster:  # the primaries hold the data once
            client = cast(RedisCluster, db.client())
            info = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
            return sum(_data_memory(node) for node in info.values())
        return _data_memory(db.client().info("memory"))
    return size


def redis_expire(db: RedisDatabase, prefix: str) -> Callable[[], None]:
    """What the TTLs of a retained leg do once LEG_RETENTION_S has passed: all but the
    tombstones go."""
    def expire() -> None:
        client = db.client()
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            if not key.startswith(f"{prefix}ended:"):
                client.delete(key)
    return expire


def measure_redis(url: str, topology: RedisTopology, calls: int) -> list[tuple[str, float]]:
    db = RedisDatabase(url, topology)
    prefix = f"callrelay-footprint:{uuid.uuid4().hex[:12]}:"
    try:
        return measure(lambda clock: RedisStore(db, RETENTION, clock, prefix=prefix),
                       calls, redis_size(db), redis_expire(db, prefix))
    finally:
        client = db.client()
        for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
            client.delete(key)
        db.close()


def measure_stores(calls: int, postgres: str | None = None, redis: str | None = None,
                   redis_cluster: str | None = None) -> dict[str, list[tuple[str, float]]]:
    """Bytes per call at each moment: SQLite always, the servers named when given."""
    results: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="callrelay-footprint-") as tmp:
        path = Path(tmp) / "footprint.sqlite3"
        results["SQLite"] = measure(
            lambda clock: SQLiteStore(SQLiteDatabase(str(path)), RETENTION, clock),
            calls, sqlite_size(path))
    if postgres:
        name = f"callrelay_footprint_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = urlunsplit(urlsplit(postgres)._replace(path="/" + name))
        try:
            results["PostgreSQL"] = measure(
                lambda clock: PostgresStore(PostgresDatabase(url), RETENTION, clock),
                calls, postgres_size(url))
        finally:
            with psycopg.connect(postgres, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(
                    sql.Identifier(name)))
    if redis:
        results["Redis"] = measure_redis(redis, RedisTopology(), calls)
    if redis_cluster:
        results["Redis Cluster"] = measure_redis(redis_cluster, RedisTopology("cluster"), calls)
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure SQLite, and the servers named on the command line; print a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--postgres", help="a database URL on the server to measure on "
                                           "(a database is created there and dropped)")
    parser.add_argument("--redis", help="a Redis server holding nothing else")
    parser.add_argument("--redis-cluster", help="a node of a Redis Cluster holding nothing "
                                                "else")
    args = parser.parse_args(argv)
    results = measure_stores(args.calls, args.postgres, args.redis, args.redis_cluster)
    print(f"bytes per call ({args.calls:,} phone-to-SDK calls, two legs each)")
    print(f"{'store':<14} {'live':>8} {'ended, retained':>16} {'tombstones only':>16}")
    for store, moments in results.items():
        print(f"{store:<14} " + " ".join(f"{v:>{w},.0f}" for (_, v), w
                                         in zip(moments, (8, 16, 16), strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
