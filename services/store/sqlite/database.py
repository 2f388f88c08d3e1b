"""One SQLite file shared by the SQLite adapters: WAL mode, one writer and a few readers."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from services.errors import StoreUnavailable

T = TypeVar("T")

BUSY_TIMEOUT_S = 10.0
# Read connections per process and file. Each caches the pages its lookups touch; a connection
# per thread made a worker's memory grow with threads x working set (see BENCHMARKS.md).
READERS = 4
# One writer per process and file at a time: the others queue on a lock that is handed over at
# once, instead of each polling SQLite's busy handler, which sleeps 1, 2, 5 … 100 ms between
# tries and so leaves the database idle while writers wait (see BENCHMARKS.md). Shared by every
# adapter on the same file, so the leg store and the outbox queue together too.
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: str) -> threading.Lock:
    key = os.path.realpath(path) if path != ":memory:" else path
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


class SQLiteDatabase:
    """A SQLite file: one writer connection and a few readers per process, shared by adapters."""

    def __init__(self, path: str, readers: int = READERS) -> None:
        self.path = path
        self._lock = _write_lock(path)
        self._readers = readers
        self._reset()
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def ensure_schema(self, schema: str) -> None:
        """Create an adapter's tables and indexes unless they exist (idempotent)."""
        with self._lock, self.errors():
            self._writer_connection().executescript(schema)

    def _reset(self) -> None:
        # Connections must not cross a fork: a child process starts with none of its parent's.
        self._pid = os.getpid()
        self._writer: sqlite3.Connection | None = None
        self._idle: list[sqlite3.Connection] = []
        self._slots = threading.BoundedSemaphore(self._readers)
        self._guard = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `write`).
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                             check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a killed process; only a power cut can lose the last
        # commits. That is the trade Heroku-like platforms make anyway.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        return db

    def _writer_connection(self) -> sqlite3.Connection:
        """The process's writer; only ever used with the write lock held."""
        if self._pid != os.getpid():
            self._reset()
        if self._writer is None:
            self._writer = self._open()
        return self._writer

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any sqlite3 error into StoreUnavailable (503), naming the data, not the file."""
        try:
            yield
        except sqlite3.Error as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The store (SQLite) failed: {name}.") from exc

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction; its result once committed (rolled back if it raises).

        `fn` must only use the connection it is given: it is the whole transaction.
        """
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreUnavailable("The store (SQLite) is busy; retry shortly.")
        try:
            with self.errors():
                db = self._writer_connection()
                # IMMEDIATE takes SQLite's write lock up front, so two workers updating the same
                # row serialise instead of both reading the old one.
                db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return result
        finally:
            self._lock.release()

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query, on one of a few shared read connections."""
        if self._pid != os.getpid():
            self._reset()
        slots = self._slots
        if not slots.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreUnavailable("The store (SQLite) is busy; retry shortly.")
        try:
            with self._guard:
                db = self._idle.pop() if self._idle else None
            with self.errors():
                db = db or self._open()
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
        if self._lock.acquire(blocking=False):
            try:
                writer, self._writer = self._writer, None
                if writer is not None:
                    writer.close()
            finally:
                self._lock.release()
