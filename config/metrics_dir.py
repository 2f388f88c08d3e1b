"""prometheus-client's multiprocess mode under gunicorn: one empty directory per master start.

gunicorn.conf.py calls `prepare()` in the master, before any worker imports prometheus_client
(which picks its storage at import), then `count_worker_exits()`, and installs `child_exit` and
`on_exit` as hooks. The master's own counter lives in the same directory, so /metrics sums it
with the workers' values.
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
_exits: list[Any] = []  # the master's counter of workers that exited, once created


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


def count_worker_exits() -> None:
    """Create, in the master, the counter of workers that exited: served at 0 from the start,
    so that the first exit shows in increase()."""
    if not _exits:
        from prometheus_client import Counter

        _exits.append(Counter(
            "callrelay_worker_exits", "Worker processes that exited (crashed, killed, timed "
            "out or stopped), counted by the gunicorn master.", registry=None))


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: forget a dead worker's live gauges (its counters stay in the sums) and
    count its exit."""
    from prometheus_client import multiprocess

    path = _state["path"]
    if path is not None:
        multiprocess.mark_process_dead(worker.pid, path)
        count_worker_exits()
        _exits[0].inc()


def on_exit(server: Any) -> None:
    """gunicorn hook: remove the temporary directory this master created."""
    created, _state["created"] = _state["created"], None
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    _state["path"] = None
