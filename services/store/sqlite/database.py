"""One SQLite file shared by the SQLite adapters: WAL mode, shared readers, grouped writes."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from services.errors import StoreUnavailable
from services.store.sqlite.writes import GroupCommit

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0
# Read connections per process and file. Each caches the pages its lookups touch; a connection
# per thread made a worker's memory grow with threads x working set (see BENCHMARKS.md).
READERS = 4

_writers: dict[str, GroupCommit] = {}
_writers_guard = threading.Lock()


def _open(path: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in the writer).
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)
    _use_wal(db)
    # NORMAL in WAL mode survives a killed process; only a power cut can lose the last
    # commits. That is the trade Heroku-like platforms make anyway.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode, retrying while another process converts it.

    Two connections converting a new file at once both hold its read lock and want its write
    lock: SQLite answers one of them "database is locked" at once, without its busy handler
    (waiting would deadlock them). gunicorn's master converts the file before the workers fork
    (services/store/sqlite/prepare.py); this covers every other process that opens it.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(random.uniform(0.005, 0.05))  # the other converter needs a few ms


def _writer(path: str) -> GroupCommit:
    # One per process and file, shared by every adapter on it (the leg store and the outbox).
    key = os.path.realpath(path) if path != ":memory:" else path
    with _writers_guard:
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = GroupCommit(lambda: _open(path), int(BUSY_TIMEOUT_S * 1000))
        return writer


class SQLiteDatabase:
    """A SQLite file: group-committed writes and a few readers per process, shared by adapters."""

    def __init__(self, path: str, readers: int = READERS) -> None:
        self.path = path
        self._writer = _writer(path)
        self._readers = readers
        self._reset()
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def ensure_schema(self, schema: str) -> None:
        """Create an adapter's tables and indexes unless they exist (idempotent)."""
        # executescript commits by itself: run it alone, not inside a group transaction.
        with self.errors():
            db = _open(self.path)
            try:
                db.executescript(schema)
            finally:
                db.close()

    def _reset(self) -> None:
        # Connections must not cross a fork: a child process starts with none of its parent's.
        self._pid = os.getpid()
        self._idle: list[sqlite3.Connection] = []
        self._slots = threading.BoundedSemaphore(self._readers)
        self._guard = threading.Lock()

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any sqlite3 error into StoreUnavailable (503), naming the data, not the file."""
        try:
            yield
        except sqlite3.Error as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The store (SQLite) failed: {name}.") from exc

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction and return its result once committed.

        `fn` may run on another thread, in one transaction with other writes: it must only use
        the connection it is given (no logging, no locks), and is rolled back alone if it raises.
        """
        with self.errors():
            return self._writer.run(fn)

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query, on one of a few shared read connections."""
        if self._pid != os.getpid():
            self._reset()
        slots = self._slots
        # Untimed first: a timed wait costs a timer even when a connection is free.
        if not slots.acquire(blocking=False) and not slots.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreUnavailable("The store (SQLite) is busy; retry shortly.")
        try:
            with self._guard:
                db = self._idle.pop() if self._idle else None
            with self.errors():
                db = db or _open(self.path)
                try:
                    return db.execute(sql, args).fetchall()
                finally:
                    with self._guard:
                        self._idle.append(db)
        finally:
            slots.release()

    def close(self) -> None:
        """Close the connections not in use now; the next call opens what it needs."""
        with self._guard:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()
        self._writer.close()
