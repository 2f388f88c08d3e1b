"""Group commit for SQLite: a process's concurrent writes share one transaction, off the hub."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
# Writes wait at most this long for the transaction that will carry them to start.
QUEUE_TIMEOUT_S = 10.0


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


class _WriteFailed(Exception):
    """A write of the transaction raised; the write holds its error."""


class GroupCommit:
    """A process's writer for one file: concurrent writes share one transaction (group commit).

    The first writer to arrive leads: it takes every write queued by then and runs them in one
    `BEGIN IMMEDIATE … COMMIT`. Writes that arrive meanwhile queue for the next transaction, led
    by the first of them. A write is answered only once the transaction carrying it is
    committed, so acknowledged means durable; a failing write fails alone.
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
        try:
            self._commit(db, batch)
        except _WriteFailed:
            if len(batch) == 1:
                return  # rolled back; the job holds its error
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

    @staticmethod
    def _commit(db: sqlite3.Connection, jobs: list[_Job]) -> None:
        # IMMEDIATE takes SQLite's write lock up front, so two workers updating the same row
        # serialise instead of both reading the old one.
        db.execute("BEGIN IMMEDIATE")
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
