"""Fill a store with legs through the store port, as callrelay's webhooks would have."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice

import psycopg
import redis

from bench.workload import USERS, LiveCall, new_sid
from services.legs.model import LegEvent
from services.legs.rules import Retention
from services.store.open import open_stores
from services.store.postgres.database import PostgresDatabase
from services.store.postgres.legs import PostgresStore
from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.legs import SQLiteStore

PHONE = "+15005550006"
LIVE_TARGETS = 50  # calls /notify is aimed at: 100 legs, the whole of the small registry
CHUNK = 5000


def live_targets() -> list[LiveCall]:
    """Fresh SIDs for the calls /notify targets; the SDK of user-<n> sits on each parent."""
    return [LiveCall(new_sid(), new_sid(), f"user-{n}") for n in range(LIVE_TARGETS)]


def _call_events(parent: str, child: str, identity: str, status: str) -> list[LegEvent]:
    return [LegEvent(call_sid=parent, status=status, from_=f"client:{identity}", to=PHONE,
                     direction="inbound"),
            LegEvent(call_sid=child, status=status, parent_sid=parent, from_=f"client:{identity}",
                     to=PHONE, direction="outbound-dial")]


def _others(first: int, count: int) -> Iterator[LegEvent]:
    """Background calls: nine in ten ended, the rest live with identities /notify never names."""
    for n in range(first, first + count):
        user = n % USERS
        live = n % 10 == 0 and user >= LIVE_TARGETS
        yield from _call_events(new_sid(), new_sid(), f"user-{user}",
                                "in-progress" if live else "completed")


def _apply_chunk(url: str, first: int, count: int) -> int:
    store = open_stores(url, Retention()).legs
    try:
        for event in _others(first, count):
            store.apply(event)
    finally:
        store.close()
    return 2 * count


def seed(url: str, legs: int, targets: list[LiveCall], processes: int = 1) -> float:
    """Store the targets' legs, then background calls up to `legs` legs; returns seconds taken."""
    start = time.monotonic()
    store = open_stores(url, Retention()).legs
    try:
        for call in targets:
            for event in _call_events(call.parent_sid, call.child_sid, call.identity,
                                      "in-progress"):
                store.apply(event)
    finally:
        store.close()
    calls = max(0, legs - 2 * len(targets)) // 2
    chunks = [(n, min(CHUNK, calls - n)) for n in range(0, calls, CHUNK)]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_apply_chunk, [url] * len(chunks), *zip(*chunks, strict=True)))
    else:
        for first, count in chunks:
            _apply_chunk(url, first, count)
    return time.monotonic() - start


def reset(url: str, targets: list[LiveCall]) -> None:
    """Forget every leg, then store the targets again: a registry back to its seeded state."""
    if url.startswith("sqlite:///"):
        # The port's own purge, run with a clock past every expiry: nothing is retained.
        far = SQLiteStore(SQLiteDatabase(url.removeprefix("sqlite:///")), Retention(),
                          clock=lambda: time.time() + 10**9)
        far.purge()
        far.close()
    elif url.startswith(("postgresql://", "postgres://")):
        gone = PostgresStore(PostgresDatabase(url), Retention(),
                             clock=lambda: time.time() + 10**9)
        while gone.purge():  # bounded: a batch at a time
            pass
        gone.close()
    else:
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    seed(url, 2 * len(targets), targets)


def count_legs(url: str) -> int:
    """How many legs the store holds (retained or not yet purged)."""
    if url.startswith("sqlite:///"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(db.execute("SELECT count(*) FROM legs").fetchone()[0])
        finally:
            db.close()
    if url.startswith(("postgresql://", "postgres://")):
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM callrelay_legs").fetchone()
        return int(row[0]) if row else 0
    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in islice(client.scan_iter("callrelay:leg:*", count=1000), 10**7))
    finally:
        client.close()
