"""One SQLite file shared by the SQLite adapters: WAL mode, shared readers, grouped writes."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from services.errors import StoreUnavailable

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0
# Read connections per process and file. Each caches the pages its lookups touch; a connection
# per thread made a worker's memory grow with threads x working set (see BENCHMARKS.md).
READERS = 4
# Writes wait at most this long for the transaction that will carry them to start.
QUEUE_TIMEOUT_S = BUSY_TIMEOUT_S


def _off_the_hub(fn: Callable[[], T]) -> T:
    """Run `fn` on a native thread when gevent has patched threading, else right here.

    SQLite's C calls do not yield: a commit, or the busy handler's sleeps while another worker
    process holds the write lock, would stop every request of a gevent worker meanwhile.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return fn()
    import gevent

    return gevent.get_hub().threadpool.apply(fn)  # type: ignore[no-any-return]


class _Job:
    """One write waiting for, or carried by, a group transaction."""

    __slots__ = ("done", "error", "fn", "leads", "result", "wake")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.wake = threading.Event()  # done, or promoted to lead the next transaction
        self.leads = False
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None


class _GroupCommit:
    """A process's writer for one file: concurrent writes share one transaction (group commit).

    The first writer to arrive leads: it takes every write queued by then and runs them, each in
    its own savepoint, in one `BEGIN IMMEDIATE … COMMIT`. Writes that arrive meanwhile queue for
    the next transaction, led by the first of them. A write is answered only once the transaction
    carrying it is committed, so acknowledged means durable; a failing write rolls back alone.
    """

    def __init__(self, open_db: Callable[[], sqlite3.Connection]) -> None:
        self._open = open_db
        self._reset()

    def _reset(self) -> None:
        # Connections, locks and queues must not cross a fork: a child starts with none.
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._queue: list[_Job] = []
        self._busy = False
        self._db: sqlite3.Connection | None = None

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction (shared with concurrent writes); its result."""
        if self._pid != os.getpid():
            self._reset()
        job = _Job(fn)
        with self._guard:
            self._queue.append(job)
            if not self._busy:
                self._busy = job.leads = True
        if not job.leads and not job.wake.wait(QUEUE_TIMEOUT_S):
            with self._guard:
                give_up = not job.leads and job in self._queue
                if give_up:  # still unstarted, and not just promoted: drop it
                    self._queue.remove(job)
            if give_up:
                raise sqlite3.OperationalError("the write queue did not move")
            if not job.leads:
                job.wake.wait()  # its transaction is running: wait for the outcome
        if not job.done:  # the first writer, or promoted by the previous leader
            self._lead()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self._guard:
            batch, self._queue = self._queue, []
        try:
            _off_the_hub(lambda: self._transaction(batch))
        except BaseException as exc:  # the commit (or BEGIN) failed: every write failed
            for job in batch:
                job.error = job.error or exc
        finally:
            for job in batch:
                job.done = True
                job.wake.set()
            with self._guard:
                if self._queue:
                    self._queue[0].leads = True
                    self._queue[0].wake.set()
                else:
                    self._busy = False

    def _transaction(self, batch: list[_Job]) -> None:
        # On a native thread under gevent: touches only SQLite and the jobs' own fields.
        if self._db is None:
            self._db = self._open()
        db = self._db
        # IMMEDIATE takes SQLite's write lock up front, so two workers updating the same row
        # serialise instead of both reading the old one.
        db.execute("BEGIN IMMEDIATE")
        try:
            if len(batch) == 1:  # alone: its own transaction, no savepoint needed
                batch[0].result = batch[0].fn(db)
            else:
                for job in batch:
                    db.execute("SAVEPOINT job")
                    try:
                        job.result = job.fn(db)
                    except Exception as exc:
                        job.error = exc
                        db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the writer connection unless a transaction is running."""
        with self._guard:
            if self._busy or self._pid != os.getpid():
                return
            db, self._db = self._db, None
        if db is not None:
            db.close()


_writers: dict[str, _GroupCommit] = {}
_writers_guard = threading.Lock()


def _open(path: str) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in the writer).
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                         check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a killed process; only a power cut can lose the last
    # commits. That is the trade Heroku-like platforms make anyway.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    return db


def _writer(path: str) -> _GroupCommit:
    # One per process and file, shared by every adapter on it (the leg store and the outbox).
    key = os.path.realpath(path) if path != ":memory:" else path
    with _writers_guard:
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = _GroupCommit(lambda: _open(path))
        return writer


class SQLiteDatabase:
    """A SQLite file: schema on open, group-committed writes and a few readers per process."""

    def __init__(self, path: str, what: str, schema: str, readers: int = READERS) -> None:
        self.path = path
        self.what = what  # names the data in error messages: "call registry", "outbox"
        self._writer = _writer(path)
        self._readers = readers
        self._reset()
        if path != ":memory:" and os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        # executescript commits by itself: run it alone, not inside a group transaction.
        with self.errors():
            db = _open(path)
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
            raise StoreUnavailable(f"The {self.what} (SQLite) failed: {name}.") from exc

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
            raise StoreUnavailable(f"The {self.what} (SQLite) is busy; retry shortly.")
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
