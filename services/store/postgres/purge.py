"""Expiry without a cron: bounded purges of expired rows, riding on the adapters' writes.

Reads never see an expired row (every query filters on `expires_at`), so purging only reclaims
space: a few hundred rows at a time, once a minute per process, and again at the next write
while a batch comes back full, so that a backlog drains without one long statement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from services.errors import StoreUnavailable
from services.store.postgres.database import Connection

log = logging.getLogger("callrelay.store")

PURGE_EVERY_S = 60.0
PURGE_BATCH = 500


def bounded_delete(conn: Connection, table: str, key: str, now: float) -> int:
    """Delete up to PURGE_BATCH rows of `table` whose `expires_at` has passed; how many."""
    # SKIP LOCKED: a row a writer holds is being written now, and is left for the next purge;
    # two processes purging at once share the rows instead of waiting for each other.
    # `table` and `key` are this package's literals, never caller input.
    cursor = conn.execute(
        f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} "  # noqa: S608
        f"WHERE expires_at <= %(now)s LIMIT %(batch)s FOR UPDATE SKIP LOCKED) "
        "AND expires_at <= %(now)s", {"now": now, "batch": PURGE_BATCH})
    return cursor.rowcount


class Purges:
    """When a process purges next: a minute after its last purge, or at once after a full batch."""

    def __init__(self, purge: Callable[[], object]) -> None:
        self._purge = purge
        self._next = 0.0

    def maybe(self, now: float) -> None:
        """Purge if it is time; a failed purge only waits for the next one (the write is done)."""
        if now < self._next:
            return
        self._next = now + PURGE_EVERY_S  # first, so that concurrent writes do not purge too
        try:
            self._purge()
        except StoreUnavailable as exc:
            log.warning("store purge failed; it is tried again later",
                        extra={"error": str(exc)})

    def done(self, now: float, full: bool) -> None:
        """A purge ran: the next one in a minute, or at the next write after a full batch."""
        self._next = now if full else now + PURGE_EVERY_S
