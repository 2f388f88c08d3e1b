"""Under gevent (a gevent worker), SQLite writes group on the hub while the write lock is free,
and wait off the hub, stalling nobody, while another connection holds it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a process of its own: gevent's monkey-patching must come before anything else.
SCRIPT = textwrap.dedent("""
    from gevent import monkey
    monkey.patch_all()
    import json, sqlite3, sys
    import gevent
    from services.store.sqlite import writes
    from services.store.sqlite.database import SQLiteDatabase

    path = sys.argv[1]
    db = SQLiteDatabase(path)
    db.ensure_schema("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY);")
    transactions = []
    run = writes.GroupCommit._run
    writes.GroupCommit._run = staticmethod(
        lambda conn, jobs: (transactions.append(len(jobs)), run(conn, jobs))[1])

    def insert(key):
        def job(conn):
            conn.execute("INSERT INTO t VALUES (?)", (key,))
            if key == "bad":
                raise ValueError("this write fails")
            return key
        return job

    def write(key):
        try:
            return db.write(insert(key))
        except ValueError:
            return "failed"

    keys = [f"k{i}" for i in range(40)] + ["bad"]
    burst = [gevent.spawn(write, key) for key in keys]
    gevent.joinall(burst)
    grouped = {"answers": [g.value for g in burst], "transactions": len(transactions)}

    # Another connection holds the write lock: the write waits for it without stopping the hub.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    ticks = []
    waiting = gevent.spawn(write, "after-lock")
    while len(ticks) < 20:
        gevent.sleep(0.01)
        ticks.append(waiting.ready())
    holder.execute("COMMIT")
    waiting.join(10)
    rows = {k for (k,) in sqlite3.connect(path).execute("SELECT k FROM t")}
    print(json.dumps({**grouped, "answered_while_locked": any(ticks),
                      "after_lock": waiting.value, "rows": sorted(rows)}))
""")


def test_writes_group_on_the_hub_and_wait_for_the_lock_off_it(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "db.sqlite3")],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    keys = [f"k{i}" for i in range(40)]
    assert result["answers"] == [*keys, "failed"]
    # 41 writes ready at once: one transaction, then each again alone after the bad one failed.
    assert result["transactions"] == 1 + 41
    assert result["answered_while_locked"] is False
    assert result["after_lock"] == "after-lock"
    assert result["rows"] == sorted([*keys, "after-lock"])
