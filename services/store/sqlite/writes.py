"""Group commit for SQLite: a process's concurrent writes share one transaction, off the hub
unless SQLite's write lock is free."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
# Writes wait at most this long for the transaction that will carry them to start.
QUEUE_TIMEOUT_S = 10.0
# Under gevent the writer connection does not checkpoint the WAL as it commits (a checkpoint
# writes and syncs the database file: not on the hub); a passive checkpoint runs off the hub
# after this many transactions instead (SQLite's own default is every 1000 WAL pages, several
# transactions' worth).
CHECKPOINT_EVERY = 100


def _under_gevent() -> bool:
    """True when gevent has patched threading (a gevent worker): threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


def _off_the_hub(fn: Callable[[], T]) -> T:
    """Run `fn` on a native thread when gevent has patched threading, else right here.

    SQLite's C calls do not yield: a commit, or the busy handler's sleeps while another worker
    process holds the write lock, would stop every request of a gevent worker meanwhile.
    """
    if not _under_gevent():
        return fn()
    import gevent

    return gevent.get_hub().threadpool.apply(fn)  # type: ignore[no-any-return]


def _busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


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


class _WriteFailed(Exception):
    """A write of the transaction raised; the write holds its error."""


class GroupCommit:
    """A process's writer for one file: concurrent writes share one transaction (group commit).

    The first writer to arrive leads: it takes every write queued by then and runs them in one
    `BEGIN IMMEDIATE … COMMIT`. Writes that arrive meanwhile queue for the next transaction, led
    by the first of them. A write is answered only once the transaction carrying it is
    committed, so acknowledged means durable; a failing write fails alone.

    Under gevent the leader first lets the other ready greenlets queue their writes, then runs
    the transaction on the hub when SQLite's write lock is free (a handful of page updates and
    a WAL append: the hop to a native thread and back cost more CPU than that), and on
    gevent's thread pool when another process holds it, where waiting stalls no other request.
    """

    def __init__(self, open_db: Callable[[], sqlite3.Connection],
                 busy_timeout_ms: int = int(QUEUE_TIMEOUT_S * 1000)) -> None:
        self._open = open_db
        self._busy_timeout_ms = busy_timeout_ms
        self._reset()

    def _reset(self) -> None:
        # Connections, locks and queues must not cross a fork: a child starts with none.
        self._pid = os.getpid()
        self._guard = threading.Lock()
        self._queue: list[_Job] = []
        self._busy = False
        self._db: sqlite3.Connection | None = None
        self._since_checkpoint = 0

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
        hub = _under_gevent()
        if hub:
            # Greenlets with a request ready get to queue their writes: one transaction for all.
            import gevent

            gevent.sleep(0)
        with self._guard:
            batch, self._queue = self._queue, []
        try:
            if not hub or not self._on_the_hub(batch):
                _off_the_hub(lambda: self._transaction(batch))
        except BaseException as exc:  # the commit (or BEGIN) failed: every write failed
            for job in batch:
                job.error = job.error or exc
        finally:
            for job in batch:
                job.done = True
                job.wake.set()
            if hub and self._since_checkpoint >= CHECKPOINT_EVERY:
                self._checkpoint()
            with self._guard:
                if self._queue:
                    self._queue[0].leads = True
                    self._queue[0].wake.set()
                else:
                    self._busy = False

    def _connection(self, hub: bool) -> sqlite3.Connection:
        if self._db is None:
            db = self._open()
            if hub:  # checkpoints run off the hub (_checkpoint), not in a COMMIT on it
                db.execute("PRAGMA wal_autocheckpoint=0")
            self._db = db
        return self._db

    def _on_the_hub(self, batch: list[_Job]) -> bool:
        """Run the batch's transaction here when the write lock is free; False if it is not."""
        db = self._connection(hub=True)
        db.execute("PRAGMA busy_timeout=0")
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _busy(exc):
                return False  # another process writes: wait for it on the thread pool
            raise
        finally:
            db.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        self._since_checkpoint += 1
        try:
            self._run(db, batch)
        except _WriteFailed:
            if len(batch) > 1:  # each again alone, off the hub (they may wait for the lock)
                _off_the_hub(lambda: self._alone(db, batch))
        return True

    def _checkpoint(self) -> None:
        """Copy the WAL's pages into the database file, off the hub, without waiting on anyone."""
        db, self._since_checkpoint = self._db, 0
        if db is not None:
            with contextlib.suppress(sqlite3.Error):  # the next one will do; the WAL grows
                _off_the_hub(lambda: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())

    def _transaction(self, batch: list[_Job]) -> None:
        # On a native thread under gevent: touches only SQLite and the jobs' own fields.
        # Under gevent _on_the_hub opened the connection already (without auto-checkpoints):
        # a transaction that waited for the lock here counts toward the next checkpoint too.
        db = self._connection(hub=False)
        self._since_checkpoint += 1
        try:
            self._commit(db, batch)
        except _WriteFailed:
            if len(batch) > 1:
                self._alone(db, batch)

    def _alone(self, db: sqlite3.Connection, batch: list[_Job]) -> None:
        # One write failed (rarely: a bug, a constraint): the batch was rolled back, and
        # each write runs again alone, so that it fails alone. Writes only read and write
        # the database, so running one again is safe. Cheaper than a savepoint per write.
        for job in batch:
            job.error = None
            try:
                self._commit(db, [job])
            except _WriteFailed:
                pass
            except Exception as exc:  # BEGIN or COMMIT: this write failed
                job.error = exc

    @classmethod
    def _commit(cls, db: sqlite3.Connection, jobs: list[_Job]) -> None:
        # IMMEDIATE takes SQLite's write lock up front, so two workers updating the same row
        # serialise instead of both reading the old one.
        db.execute("BEGIN IMMEDIATE")
        cls._run(db, jobs)

    @staticmethod
    def _run(db: sqlite3.Connection, jobs: list[_Job]) -> None:
        """The jobs, then COMMIT, in the transaction begun on `db`; rolled back if one raises."""
        try:
            for job in jobs:
                try:
                    job.result = job.fn(db)
                except Exception as exc:
                    job.error = exc
                    raise _WriteFailed from exc
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
