"""A real browser for the console's tests: Debian's chromium, driven by Playwright for Python.

Playwright's own browser downloads are never used: the tests launch the system's chromium (apt
package `chromium`). Without it they skip, unless CALLRELAY_REQUIRE_BROWSER=1 (CI) makes that a
failure.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

CHROMIUM = Path(os.environ.get("CALLRELAY_CHROMIUM", "/usr/bin/chromium"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# A laptop's screen: the console must read well at this width.
VIEWPORT = {"width": 1366, "height": 860}


def require_chromium() -> Path:
    """The chromium binary; skip without it (fail when CALLRELAY_REQUIRE_BROWSER=1)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"no chromium at {CHROMIUM}: apt-get install chromium (or set CALLRELAY_CHROMIUM)"
    if os.environ.get("CALLRELAY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (CALLRELAY_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (Playwright's Browser), closed afterwards."""
    binary = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(binary), args=FLAGS,
                                             headless=True)
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log in test output."""


class StaticSite:
    """A web page served from another origin (a different port): the attacker's site."""

    def __init__(self, html: Callable[[], str]) -> None:
        self.html = html
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                                   request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.port)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        Request(environ)
        return Response(self.html(), content_type="text/html")(environ, start_response)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
