"""One PostgreSQL database shared by the PostgreSQL adapters: a pool per process, bounded waits.

psycopg (3.1.14 and later) notices gevent's monkey-patching and waits on its sockets through the
patched `select`, so under the Procfile's gevent worker a query in flight (or waiting for a
lock) is one greenlet waiting, not a stopped worker; the pool's threads are greenlets too.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg.waiting
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from services.errors import StoreUnavailable
from services.store.postgres.schema import migrate

log = logging.getLogger("callrelay.store")
T = TypeVar("T")
Connection = psycopg.Connection[Any]

# Connections per process (gunicorn worker): a query holds one for a millisecond or two, so a
# few serve a worker's whole CPU. STORE_POOL_SIZE sets it (docs/sizing.md).
POOL_SIZE = 4
# A request waits at most this long for a pooled connection (all busy, or the server down),
# then answers 503: an unreachable database costs each request about this much.
WAIT_S = 2.0
# After this long failing to connect, the pool stops retrying until a request asks again, so a
# database that comes back is used by the next request, not after psycopg_pool's backoff
# (which doubles from 1 s).
RECONNECT_S = 1.0
# Twilio waits 15 s for a webhook: a statement stuck longer (on a lock) fails, and Twilio retries.
STATEMENT_TIMEOUT_MS = 10_000
# Libpq parameters callrelay sets unless the URL does: a bounded connect, an identifiable
# session, and a dead server noticed within seconds instead of the kernel's two hours.
DEFAULTS: dict[str, Any] = {
    "connect_timeout": 2,
    "application_name": "callrelay",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}

# Pools inherited across a fork: their sockets belong to the parent. They are kept referenced,
# never used or closed, because closing (or collecting) one would end the parent's sessions.
_inherited: list[ConnectionPool[Any]] = []


# This process's databases, closed at exit: a pool left to the garbage collector stops its
# threads while the interpreter (and gevent's hub) is being torn down, which fails loudly.
_open: weakref.WeakSet[PostgresDatabase] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for db in list(_open):
        db.close()


def _blocks_the_hub() -> bool:
    """True when gevent patched this process after psycopg chose its (then blocking) waits."""
    monkey = sys.modules.get("gevent.monkey")
    return (monkey is not None and monkey.is_module_patched("select")
            and psycopg.waiting.wait is getattr(psycopg.waiting, "wait_c", None))


def _configure(conn: Connection) -> None:
    """Run once on each new connection, before the pool lends it."""
    conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")


class PostgresDatabase:
    """A PostgreSQL URL: a connection pool per process, the schema, and errors as 503."""

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        try:
            given = conninfo_to_dict(url)  # a malformed URL fails here, not on first use
        except psycopg.ProgrammingError as exc:
            raise ValueError("a malformed PostgreSQL URL") from exc
        self._url = url  # never logged nor put in a message: it may hold a password
        # Libpq reads `sslmode` (and the rest) from the URL itself; only gaps are filled.
        self._kwargs = {k: v for k, v in DEFAULTS.items() if k not in given}
        self._size = max(1, pool_size)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._pool: ConnectionPool[Any] | None = None
        self._migrated = False
        self._guard = threading.Lock()

    def _connections(self) -> ConnectionPool[Any]:
        """This process's pool, opened on first use (after gunicorn's fork, never before)."""
        if self._pid != os.getpid():
            if self._pool is not None:
                _inherited.append(self._pool)
            self._reset()
        pool = self._pool
        if pool is None:
            with self._guard:
                if self._pool is None:
                    if _blocks_the_hub():
                        log.error("psycopg was imported before gevent patched this worker: "
                                  "every query will stop the worker's other requests")
                    self._pool = ConnectionPool(
                        self._url, min_size=1, max_size=self._size, open=False,
                        timeout=WAIT_S, reconnect_timeout=RECONNECT_S, name="callrelay",
                        kwargs={"autocommit": True, **self._kwargs}, configure=_configure)
                    self._pool.open(wait=False)
                    _open.add(self)
                pool = self._pool
        return pool

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn any psycopg error into StoreUnavailable (503), naming the data, not the server."""
        try:
            yield
        except psycopg.Error as exc:
            name = exc.__class__.__name__
            raise StoreUnavailable(f"The store (PostgreSQL) failed: {name}.") from exc

    def run(self, fn: Callable[[Connection], T]) -> T:
        """`fn` on a pooled connection (autocommit: each statement commits by itself).

        A connection that turns out dead (the server restarted, or failed over, while it sat in
        the pool) is dropped, the pool's other idle connections are checked (they most likely
        died with it), and `fn` runs again on a live one: every caller's statements may run
        twice that way, which they are written to allow.
        """
        with self.errors():
            for attempt in range(2):
                pool = self._connections()
                with pool.connection() as conn:
                    try:
                        if not self._migrated:
                            migrate(conn)
                            self._migrated = True
                        return fn(conn)
                    except psycopg.OperationalError:
                        if attempt or not conn.broken:
                            raise
                pool.check()
            raise AssertionError("unreachable: the second attempt returns or raises")

    def rows(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """The rows of one statement."""
        return self.run(lambda conn: conn.execute(sql, args).fetchall())

    def count(self, sql: str, args: Any = ()) -> int:
        """How many rows one statement changed."""
        return self.run(lambda conn: conn.execute(sql, args).rowcount)

    def transaction(self, fn: Callable[[Connection], T]) -> T:
        """`fn` in one transaction, committed when it returns, rolled back if it raises."""

        def in_transaction(conn: Connection) -> T:
            with conn.transaction():
                return fn(conn)

        return self.run(in_transaction)

    def close(self) -> None:
        """Close this process's pool; the next call opens a new one."""
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close(timeout=5.0)
