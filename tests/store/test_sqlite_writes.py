"""SQLite writes of one process share transactions: each answered once durable, failures alone."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.errors import StoreUnavailable
from services.store.sqlite.database import SQLiteDatabase

SCHEMA = "CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);"


def rows(path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {k for (k,) in db.execute("SELECT k FROM t")}
    finally:
        db.close()


def test_writes_queued_behind_a_transaction_commit_together_and_fail_alone(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = SQLiteDatabase(str(path))
    db.ensure_schema(SCHEMA)
    release, entered = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES ('slow')")
        entered.set()
        release.wait(10)
        return "slow"

    def insert(key: str):
        def job(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO t VALUES (?)", (key,))
            if key == "bad":
                raise ValueError("this write fails")
            return key
        return job

    seen_while_queued: set[str] = set()
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(db.write, slow)
        assert entered.wait(10)
        queued = {key: pool.submit(db.write, insert(key)) for key in ("a", "b", "bad", "c")}
        threading.Event().wait(0.3)
        # Nothing queued is answered, or visible, before the transaction carrying it commits.
        assert not any(f.done() for f in queued.values())
        seen_while_queued = rows(path)
        release.set()
        assert first.result(10) == "slow"
        assert {k: f.exception(10) is None for k, f in queued.items()} == {
            "a": True, "b": True, "bad": False, "c": True}
        with pytest.raises(ValueError, match="this write fails"):
            queued["bad"].result()
        assert [queued[k].result() for k in "abc"] == ["a", "b", "c"]
    assert seen_while_queued == set()
    assert rows(path) == {"slow", "a", "b", "c"}  # the failed write rolled back alone
    db.close()


def test_a_database_error_in_a_write_is_a_store_error_and_changes_nothing(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = SQLiteDatabase(str(path))
    db.ensure_schema(SCHEMA)
    db.write(lambda conn: conn.execute("INSERT INTO t VALUES ('x')"))

    def twice(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('y')")
        conn.execute("INSERT INTO t VALUES ('x')")  # the primary key is taken

    with pytest.raises(StoreUnavailable, match="The store"):
        db.write(twice)
    assert rows(path) == {"x"}
    assert db.write(lambda conn: conn.execute("INSERT INTO t VALUES ('z')").rowcount) == 1
    assert rows(path) == {"x", "z"}
    db.close()
