"""gunicorn's gevent worker, answering the requests gunicorn itself refuses in JSON.

gunicorn refuses some requests before the app sees them (a malformed request line or header:
400; a request line over 4094 bytes: 414; too many or too large headers: 431; an unsupported
Transfer-Encoding: 501) and answers them with an HTML page. This worker lets gunicorn choose
the status and log the refusal as it always does, then writes callrelay's JSON error envelope
instead of the page.
"""

from __future__ import annotations

import json
import time
from functools import partial
from http import HTTPStatus
from typing import Any

import gevent
from gevent.pool import Pool
from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker

from config import accept_balance

# Codes and messages as the app's own errors word them (web/errors.py). gunicorn's message
# echoes the request line: never sent back, it is in gunicorn's warning log line only.
_ERRORS = {
    400: ("bad_request", "The request is not valid HTTP: its request line or a header is "
                         "malformed."),
    403: ("forbidden", "The request was refused."),
    414: ("uri_too_long", "The request line is too long: at most 4094 bytes."),
    417: ("expectation_failed", "The request's Expect header cannot be met."),
    431: ("request_header_fields_too_large", "The request's headers are too many or too "
                                             "large."),
    501: ("not_implemented", "The request's Transfer-Encoding is not supported."),
}
_INTERNAL = ("internal_error", "callrelay failed unexpectedly; the error is logged. Retry, "
                               "and report it if it persists.")


def json_error_response(status: int) -> bytes:
    """A complete HTTP/1.1 answer with callrelay's error envelope for `status`."""
    code, message = _ERRORS.get(status, _INTERNAL)
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML answer, to read its
    status; gunicorn writes through gettimeout, setblocking and sendall only."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        """Non-blocking already: gunicorn then writes without switching modes."""
        return 0.0

    def setblocking(self, flag: bool) -> None:
        """Nothing to switch."""

    def sendall(self, data: bytes) -> None:
        """Keep what gunicorn would have sent."""
        self.data += data

    @property
    def status(self) -> int:
        """The status of the answer gunicorn wrote (500 when it wrote none)."""
        parts = self.data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else 500


class JSONErrorsWorker(GeventWorker):
    """The gevent worker; the errors gunicorn answers itself are JSON, like the app's, and the
    connections are shared evenly between workers (config/accept_balance.py)."""

    def run(self) -> None:
        """gunicorn's GeventWorker.run (as of gunicorn 27.0.1, the locked version) with
        accept_balance's server in place of StreamServer; TLS left to gunicorn's own."""
        if self.cfg.is_ssl:  # callrelay runs behind the platform's TLS; keep gunicorn's own
            super().run()
            return
        servers = []
        for sock in self.sockets:
            sock.setblocking(1)
            server = accept_balance.server(sock, handle=partial(self.handle, sock),
                                           spawn=Pool(self.worker_connections),
                                           workers=self.cfg.workers)
            server.start()
            servers.append(server)
        while self.alive:
            self.notify()
            gevent.sleep(1.0)
        try:
            for server in servers:  # stop accepting
                server.close()
            # Finish the requests in flight, for up to graceful_timeout.
            started = time.time()
            while time.time() - started <= self.cfg.graceful_timeout:
                if all(s.pool.free_count() == s.pool.size for s in servers):
                    return
                self.notify()
                gevent.sleep(1.0)
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
            for server in servers:
                server.stop(timeout=1)
        except Exception:  # noqa: S110 - as gunicorn's: the worker is exiting anyway
            pass

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Let gunicorn choose the status and log, then answer in JSON."""
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        try:
            util.write_nonblock(client, json_error_response(captured.status))
        except Exception:  # the client is gone: nothing to tell it
            self.log.debug("Failed to send error message.")
