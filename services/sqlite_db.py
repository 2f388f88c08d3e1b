"""One SQLite file shared by the SQLite adapters: WAL mode, a connection per thread, one writer."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from services.errors import StoreUnavailable

BUSY_TIMEOUT_S = 10.0
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
    """A SQLite file: schema on open, per-thread connections, serialised write transactions."""

    def __init__(self, path: str, what: str, schema: str) -> None:
        self.path = path
        self.what = what  # names the data in error messages: "call registry", "outbox"
        self._local = threading.local()
        self._lock = _write_lock(path)
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with self.errors():
            self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in `write`).
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only a power cut can lose the
            # last commits. That is the trade Heroku-like platforms make anyway.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            self._local.db = db
        return db

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any sqlite3 error into StoreUnavailable (503), naming the data, not the file."""
        try:
            yield
        except sqlite3.Error as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The {self.what} (SQLite) failed: {name}.") from exc

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed when the block ends and rolled back if it raises."""
        db = self.connection()
        if not self._lock.acquire(timeout=BUSY_TIMEOUT_S):
            raise StoreUnavailable(f"The {self.what} (SQLite) is busy; retry shortly.")
        try:
            with self.errors():
                # IMMEDIATE takes SQLite's write lock up front, so two workers updating the same
                # row serialise instead of both reading the old one.
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        finally:
            self._lock.release()

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one query, outside any write transaction."""
        with self.errors():
            return self.connection().execute(sql, args).fetchall()

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
