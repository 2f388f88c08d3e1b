"""Stalled clients: connections that send half a request and wait, then probes that must answer.

Only ever aimed at 127.0.0.1, with a bounded number of connections held for a bounded time:
half of them stop inside the request headers, half send the headers and half of the body (the
app is then reading the body). Each probe is timed on a fresh connection.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.workload import Prepared

MAX_STALLED = 500
MAX_HOLD_S = 30.0


@dataclass(frozen=True)
class Probe:
    """One timed request made while the stalled connections were open."""

    what: str
    status: int | None  # None: no answer (timeout or connection error)
    seconds: float


def _loopback_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname != "127.0.0.1" or parts.port is None:
        raise ValueError("stalled connections are only ever opened to 127.0.0.1")
    return parts.port


@contextmanager
def stalled_connections(url: str, count: int) -> Iterator[int]:
    """Open `count` connections that each send half a request; yields how many are open."""
    port = _loopback_port(url)
    if not 0 < count <= MAX_STALLED:
        raise ValueError(f"between 1 and {MAX_STALLED} stalled connections")
    heads = b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica"
    bodies = (b"POST /twilio/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
              b"application/x-www-form-urlencoded\r\nX-Twilio-Signature: x\r\n"
              b"Content-Length: 400\r\n\r\nCallSid=CA" + b"0" * 190)
    opened = 0
    with ExitStack() as stack:
        for i in range(count):
            try:
                sock = stack.enter_context(socket.create_connection(("127.0.0.1", port),
                                                                    timeout=2))
                sock.sendall(heads if i % 2 else bodies)
                opened += 1
            except OSError:
                break  # the server refuses more: what is open is what is measured
        time.sleep(0.5)  # let the server accept them and start reading
        yield opened


def probe(url: str, what: str, request: Prepared, timeout_s: float = 5.0) -> Probe:
    """Send one request on a fresh connection and time its answer."""
    port = _loopback_port(url)
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(request.method, request.path, body=request.body.encode() or None,
                     headers=dict(request.headers))
        answer = conn.getresponse()
        answer.read()
        status: int | None = answer.status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        conn.close()
    return Probe(what, status, time.perf_counter() - start)


def while_stalled(url: str, count: int, probes: Callable[[], list[tuple[str, Prepared]]],
                  hold_s: float = 3.0) -> tuple[int, list[Probe]]:
    """Hold `count` stalled connections and probe every 0.2 s for `hold_s`: (opened, probes).

    `probes` gives each round's requests (fresh ones: a signed callback is not replayed).
    """
    hold_s = min(hold_s, MAX_HOLD_S)
    results: list[Probe] = []
    with stalled_connections(url, count) as opened:
        deadline = time.monotonic() + hold_s
        while time.monotonic() < deadline:
            for what, request in probes():
                results.append(probe(url, what, request))
            time.sleep(0.2)
    return opened, results
