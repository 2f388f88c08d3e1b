"""A SQLite file written before events could be set aside keeps working, its events intact."""

from __future__ import annotations

import sqlite3
import threading

from services.store.sqlite.database import SQLiteDatabase
from services.store.sqlite.outbox import SQLiteOutbox
from tests.support.clock import FakeClock

# The outbox table as callrelay created it before the `aside` column.
BEFORE = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, stream TEXT NOT NULL,
    body TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL, lease_owner TEXT,
    last_error TEXT, created_at REAL NOT NULL, closed_at REAL);
CREATE INDEX outbox_pending ON outbox(stream, seq) WHERE state = 'pending';
INSERT INTO outbox (id, stream, body, due_at, created_at) VALUES
    ('a1', 'CA1', '{}', 0, 0), ('a2', 'CA1', '{}', 0, 0);
"""


def test_an_old_file_gains_the_column_once_and_keeps_its_events(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    with sqlite3.connect(path) as db:
        db.executescript(BEFORE)
    clock = FakeClock()
    errors: list[BaseException] = []

    def open_outbox() -> None:  # workers starting together
        try:
            SQLiteOutbox(SQLiteDatabase(path), clock)
        except BaseException as exc:  # handed back to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_outbox) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    outbox = SQLiteOutbox(SQLiteDatabase(path), clock)
    try:
        [head] = outbox.lease("w1", 30)
        assert head.id == "a1"
        outbox.set_aside("a1", "w1", clock.now + 60, "HTTP 400")
        assert [e.id for e in outbox.lease("w1", 30)] == ["a2"]
    finally:
        outbox.close()
