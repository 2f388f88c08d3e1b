"""Stoplight Prism serving Twilio's OpenAPI spec, and a recording proxy in front of it.

Prism validates every request against the spec (and, with --errors, answers a violation with an
error); the proxy records what went through and can answer a request itself with a Twilio error,
since Twilio's spec defines no error answers that Prism could be asked for.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

import pytest

HERE = Path(__file__).resolve().parent
SPEC = HERE / "twilio-oai" / "callrelay_api_v2010.json"
LOCAL_PRISM = HERE / "node_modules" / ".bin" / "prism"
INSTALL = "npm ci --prefix tests/contract"
# Hop-by-hop headers are the proxy's own business; the body length is set again.
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def _unavailable(reason: str) -> None:
    """Skip, or fail when CALLRELAY_REQUIRE_PRISM=1 (CI must not skip the contract silently)."""
    if os.environ.get("CALLRELAY_REQUIRE_PRISM") == "1":
        pytest.fail(f"{reason} (CALLRELAY_REQUIRE_PRISM=1)")
    pytest.skip(reason)


def prism_binary() -> str:
    """The Prism CLI: tests/contract/node_modules first, then PATH; skip (or fail) without."""
    if shutil.which("node") is None:
        _unavailable(f"node is not on PATH: install Node.js and npm, then run `{INSTALL}`")
    found = str(LOCAL_PRISM) if LOCAL_PRISM.exists() else shutil.which("prism")
    if found is None:
        _unavailable(f"Stoplight Prism is not installed: run `{INSTALL}`")
    assert found is not None
    return found


class Prism:
    """`prism mock --errors` on the vendored spec, as a subprocess logging to `log_path`."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port, self.log_path = port, log_path
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> Prism:
        """Start Prism and wait until it answers HTTP, at most `timeout_s` seconds."""
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [prism_binary(), "mock", "--host", "127.0.0.1", "-p", str(self.port), "--errors",
             str(SPEC)], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prism did not start on port {self.port} within "
                                   f"{timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.base_url + "/", timeout=1).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer (404: no such path) means it is serving
        except OSError:
            return False
        return True

    def log_tail(self, lines: int = 40) -> str:
        """The end of Prism's output, for failure messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop Prism and wait for it."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy and its answer (from Prism, or injected)."""

    method: str
    target: str  # path and query, as sent
    form: dict[str, str]
    status: int
    body: str
    violations: list[Any]  # Prism's sl-violations header, decoded
    injected: bool

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, decoded."""
        return dict(parse_qsl(self.target.partition("?")[2], keep_blank_values=True))


@dataclass
class _Failure:
    left: int
    status: int
    code: int
    message: str
    when: Callable[[str, str], bool]


class RecordingProxy:
    """A local HTTP proxy to Prism that records every exchange and can inject Twilio errors."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._failure: _Failure | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})

    @property
    def base_url(self) -> str:
        """Where to point TWILIO_API_BASE_URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, n: int, status: int, code: int, message: str, *,
                  when: Callable[[str, str], bool]) -> None:
        """Answer the next `n` requests for which `when(method, target)` holds with this error."""
        with self._lock:
            self._failure = _Failure(n, status, code, message, when)

    @property
    def exchanges(self) -> list[Exchange]:
        """Every exchange so far, in order (a snapshot)."""
        with self._lock:
            return list(self._exchanges)

    def violations(self) -> list[str]:
        """Every answer of Prism's that reports a spec violation or an error, described."""
        return [f"{x.method} {x.target} -> {x.status} {x.violations or x.body[:500]}"
                for x in self.exchanges
                if not x.injected and (x.status >= 400 or x.violations)]

    def _injected(self, method: str, target: str) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None or failure.left <= 0 or not failure.when(method, target):
                return None
            failure.left -= 1
            return failure

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one request: inject the pending failure, or forward it to Prism."""
        method, target = request.command, request.path
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        failure = self._injected(method, target)
        if failure is not None:
            status, headers = failure.status, {"Content-Type": "application/json"}
            answer = json.dumps({"code": failure.code, "message": failure.message,
                                 "status": failure.status,
                                 "more_info": f"https://www.twilio.com/docs/errors/{failure.code}"
                                 }).encode()
        else:
            status, headers, answer = self._forward(request, body)
        form = (dict(parse_qsl(body.decode(), keep_blank_values=True))
                if "form-urlencoded" in request.headers.get("Content-Type", "") else {})
        raw = headers.get("sl-violations")
        with self._lock:
            self._exchanges.append(Exchange(method, target, form, status,
                                            answer.decode(errors="replace"),
                                            json.loads(raw) if raw else [], failure is not None))
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)

    def _forward(self, request: BaseHTTPRequestHandler,
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in _NOT_FORWARDED}
            upstream.request(request.command, request.path, body=body or None,
                             headers={**headers, "Content-Length": str(len(body))})
            response = upstream.getresponse()
            answer = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _NOT_FORWARDED}
            return response.status, kept, answer
        finally:
            upstream.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's session expects

    def _proxy(self) -> None:
        self.server.proxy.handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_DELETE = _proxy

    def log_message(self, format: str, *args: Any) -> None:
        """No access log in test output."""
