"""Connections shared evenly between gunicorn's gevent workers.

Every worker watches the one listening socket and accepts whenever it is woken: the worker that
happens to be idle when a burst of connections arrives takes most of them, and keeps them for as
long as they stay open (keep-alive). Measured with 128 /notify callers on 2 workers: 71/57 to
114/14 connections, and the rounds where one worker held most of them had the longest p99
(BENCHMARKS.md). A `BalancedServer` pauses after each accept for a time that grows with the
connections it already holds, so the worker holding fewer accepts the next ones: the split
evens out without the workers talking to each other.
"""

from __future__ import annotations

from typing import Any

from gevent.server import StreamServer

# Pause after an accept, per connection the worker holds, and at most: a worker holding 40
# connections accepts at most one every 2 ms while a burst lasts; one holding none, at once.
PAUSE_PER_CONNECTION_S = 0.00005
MAX_PAUSE_S = 0.002


class BalancedServer(StreamServer):  # type: ignore[misc]
    """gevent's StreamServer, accepting one connection at a time, less eagerly the more it holds."""

    max_accept = 1

    def _do_read(self) -> None:
        super()._do_read()
        held = len(self.pool) if self.pool is not None else 0
        if held and self._watcher is not None and not self.closed:
            self.stop_accepting()
            self._timer = self.loop.timer(min(held * PAUSE_PER_CONNECTION_S, MAX_PAUSE_S))
            self._timer.start(self._start_accepting_if_started)


def server(*args: Any, workers: int, **kwargs: Any) -> StreamServer:
    """A BalancedServer when there are other workers to share with, else gevent's own."""
    if workers > 1:
        return BalancedServer(*args, **kwargs)
    return StreamServer(*args, **kwargs)
