"""The multiprocess metrics directory gunicorn.conf.py prepares: fresh per master start."""

from __future__ import annotations

import os
from types import SimpleNamespace

from config import metrics_dir


def test_unset_gets_a_fresh_temporary_directory_removed_at_exit():
    env: dict[str, str] = {}
    path = metrics_dir.prepare(env)
    try:
        assert env[metrics_dir.ENV] == path and os.path.isdir(path) and not os.listdir(path)
        # gunicorn re-reads its config on SIGHUP: the workers it then starts keep the directory.
        assert metrics_dir.prepare({}) == path
    finally:
        metrics_dir.on_exit(None)
    assert not os.path.exists(path)


def test_a_given_directory_is_emptied_of_stale_values_and_kept(tmp_path):
    (tmp_path / "counter_123.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    env = {metrics_dir.ENV: str(tmp_path / ".")}
    try:
        assert metrics_dir.prepare(env) == str(tmp_path / ".")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    finally:
        metrics_dir.on_exit(None)
    assert tmp_path.exists()


def test_child_exit_forgets_the_dead_workers_live_gauges(tmp_path):
    try:
        metrics_dir.prepare({metrics_dir.ENV: str(tmp_path)})
        (tmp_path / "gauge_livesum_42.db").write_bytes(b"")
        (tmp_path / "counter_42.db").write_bytes(b"")
        metrics_dir.child_exit(None, SimpleNamespace(pid=42))
    finally:
        metrics_dir.on_exit(None)
    assert [p.name for p in tmp_path.iterdir()] == ["counter_42.db"]
