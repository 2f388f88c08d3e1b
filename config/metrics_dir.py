"""prometheus-client's multiprocess mode under gunicorn: one empty directory per master start.

gunicorn.conf.py calls `prepare()` in the master, before any worker imports prometheus_client
(which picks its storage at import), and installs `child_exit` and `on_exit` as hooks.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set once per master process: gunicorn re-reads its config file on SIGHUP, and the workers it
# starts then must keep writing where the earlier ones did.
_state: dict[str, str | None] = {"path": None, "created": None}


def prepare(environ: MutableMapping[str, str] | None = None) -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory; a temporary one when it is unset."""
    env = os.environ if environ is None else environ
    if _state["path"] is not None:
        env[ENV] = _state["path"]
        return _state["path"]
    given = env.get(ENV, "").strip()
    if given:
        os.makedirs(given, exist_ok=True)
        # Files of an earlier run would be summed into this one's counters.
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
        path = given
    else:
        path = tempfile.mkdtemp(prefix="callrelay-metrics-")
        _state["created"] = path
    _state["path"] = path
    env[ENV] = path
    return path


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: forget a dead worker's live gauges (its counters stay in the sums)."""
    from prometheus_client import multiprocess

    path = _state["path"]
    if path is not None:
        multiprocess.mark_process_dead(worker.pid, path)


def on_exit(server: Any) -> None:
    """gunicorn hook: remove the temporary directory this master created."""
    created, _state["created"] = _state["created"], None
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    _state["path"] = None
