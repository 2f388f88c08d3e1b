"""A brand-new SQLite file opened by several processes at once: every one of them opens it.

gunicorn's workers start together, and on Heroku every boot starts from a new file. Two
connections converting a new file to WAL at once made one fail with "database is locked"
(about 5 % of rounds of this test on a 2-core machine before the fix), and the gunicorn
master exited with it.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from services.legs.rules import Retention
from services.store.open import open_stores
from services.store.sqlite.prepare import prepare_sqlite

PROCESSES = 4
ROUNDS = 200
TABLES = {"legs", "tombstones", "registry", "conferences", "conference_participants", "outbox",
          "once_claims"}


def _open_each_new_file(folder: str, rounds: int, barrier: Any, results: Any) -> None:
    """Runs in a spawned process: round after round, open the round's new file together with
    the other processes (the barrier lines them up), as a gunicorn worker opens its store."""
    failed: list[tuple[int, str]] = []
    for n in range(rounds):
        barrier.wait(timeout=60)
        try:
            open_stores(f"sqlite:///{folder}/{n}.sqlite3", Retention()).close()
        except Exception as exc:
            failed.append((n, f"{exc} ({exc.__cause__!r})"))
    results.put(failed)


def _journal_mode_and_tables(path: Path) -> tuple[str, set[str]]:
    db = sqlite3.connect(path)
    try:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master "
                                                "WHERE type = 'table'")}
        return mode, tables
    finally:
        db.close()


def test_processes_opening_a_new_file_together_all_open_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_open_each_new_file,
                         args=(str(tmp_path), ROUNDS, barrier, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    failures = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert [f for per_process in failures for f in per_process] == []
    for n in (0, ROUNDS // 2, ROUNDS - 1):
        mode, tables = _journal_mode_and_tables(tmp_path / f"{n}.sqlite3")
        assert mode == "wal" and tables >= TABLES


def test_the_master_prepares_the_file_before_the_workers_open_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "callrelay.sqlite3"
    assert prepare_sqlite(f"sqlite:///{path}") is True
    mode, tables = _journal_mode_and_tables(path)
    assert mode == "wal" and tables >= TABLES
    assert prepare_sqlite("redis://127.0.0.1:6379/15") is False  # nothing to prepare
