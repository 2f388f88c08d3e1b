"""A small local mock of the Twilio REST endpoints callrelay uses, for tests and as a sandbox.

In tests: `with TwilioMock(sid, {sid: token}).start() as mock:` and point the SDK at it with
`client.api.base_url = mock.base_url`. As a sandbox: `python -m sandbox.twilio_mock --port 4010`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from http import HTTPStatus
from typing import Any, Self

from werkzeug.datastructures import Authorization
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.mock_calls import CallsAPI
from sandbox.mock_records import (
    MockCall,
    RecordedMessage,
    RecordedRequest,
    RecordedSubscription,
    TwilioError,
    not_found,
    now,
)

__all__ = ["MockCall", "RecordedMessage", "RecordedRequest", "RecordedSubscription",
           "TwilioError", "TwilioMock", "main"]

_CALL = "/2010-04-01/Accounts/<account_sid>/Calls/<call_sid>"
_URLS = Map([
    Rule("/2010-04-01/Accounts/<account_sid>/Calls.json", endpoint="list_calls", methods=["GET"]),
    Rule(f"{_CALL}.json", endpoint="fetch_call", methods=["GET"]),
    Rule(f"{_CALL}/UserDefinedMessages.json", endpoint="create_message", methods=["POST"]),
    Rule(f"{_CALL}/UserDefinedMessageSubscriptions.json", endpoint="create_subscription",
         methods=["POST"]),
    Rule(f"{_CALL}/UserDefinedMessageSubscriptions/<sid>.json", endpoint="delete_subscription",
         methods=["DELETE"]),
])
_ENDPOINTS = frozenset(str(rule.endpoint) for rule in _URLS.iter_rules())
# Not Twilio's: who is answering on this port (scripts/run checks that it is the mock it
# started, not another program), without credentials and never recorded.
IDENTITY_PATH = "/.well-known/callrelay-twilio-mock"


def _endpoint(request: Request) -> str | None:
    """The endpoint a request is for, or None when no route matches it."""
    try:
        endpoint, _ = _URLS.bind_to_environ(request.environ).match()
    except HTTPException:
        return None
    return str(endpoint)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Keep test output clean: no access log."""


class TwilioMock(CallsAPI):
    """An in-process HTTP server answering like Twilio's 2010-04-01 API for call messages.

    This module serves, routes, authenticates and injects failures; the resource handlers
    (`_<endpoint>` methods) live in sandbox/mock_calls.py.
    """

    def __init__(self, account_sid: str, credentials: dict[str, str], *,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.account_sid = account_sid
        self.credentials = dict(credentials)
        self.on_event = on_event
        self.strict_calls = False
        self.delay = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        """Forget calls, recordings, injected failures, delay and strict mode."""
        with self._lock:
            # Requests still sleeping in `delay` belong to before the reset: they record nothing.
            self._generation = getattr(self, "_generation", 0) + 1
            self._calls: dict[str, MockCall] = {}
            self._requests: list[RecordedRequest] = []
            self._messages: list[RecordedMessage] = []
            self._subscriptions: list[RecordedSubscription] = []
            self._fail_left = 0
            self._failure: TwilioError | None = None
            self._fail_only: str | None = None
            self.delay = 0.0
            self.strict_calls = False

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve on a background daemon thread; port 0 picks a free port."""
        if self._server is not None:
            raise RuntimeError("TwilioMock is already started")
        self._stopping.clear()
        self._server = make_server(host, port, self._wsgi, threaded=True,
                                   request_handler=_QuietHandler)
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05),
                                        name="twilio-mock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests sleeping in `delay` are woken and answered."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Where to point `client.api.base_url`, e.g. http://127.0.0.1:4010."""
        if self._server is None:
            raise RuntimeError("TwilioMock is not started")
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self._server.host,
                                                                          self._server.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self._server.port}"

    def set_call(self, sid: str, status: str, *, parent_call_sid: str | None = None,
                 from_: str | None = None, to: str | None = None,
                 direction: str | None = None) -> None:
        """Register a call leg (direction defaults to inbound), or update the details given."""
        given = {"parent_call_sid": parent_call_sid, "from_": from_, "to": to,
                 "direction": direction}
        changes: dict[str, Any] = {name: v for name, v in given.items() if v is not None}
        with self._lock:
            old = self._calls.get(sid)
            self._calls[sid] = (replace(old, status=status, date_updated=now(), **changes)
                                if old else MockCall(sid, status, **changes))

    def fail_next(self, n: int, status: int = 500, code: int | None = None,
                  message: str | None = None, *, retry_after: int = 1,
                  only: str | None = None) -> None:
        """Answer the next `n` requests with this error (code defaults to 20000 + status).

        `only` names one endpoint (e.g. "list_calls"): other requests are answered normally.
        """
        if only is not None and only not in _ENDPOINTS:
            raise ValueError(f"unknown endpoint {only!r}; one of {sorted(_ENDPOINTS)}")
        headers = {"Retry-After": str(retry_after)} if status == 429 else None
        with self._lock:
            self._fail_left, self._fail_only = n, only
            self._failure = TwilioError(status, code or 20000 + status,
                                        message or HTTPStatus(status).phrase, headers)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[RecordedMessage]:
        """Messages accepted, in order, without idempotent replays (a snapshot)."""
        with self._lock:
            return list(self._messages)

    @property
    def subscriptions(self) -> list[RecordedSubscription]:
        """Subscriptions accepted, including deleted ones (a snapshot)."""
        with self._lock:
            return list(self._subscriptions)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._answer(Request(environ))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if request.path == IDENTITY_PATH:
            return Response(json.dumps({"mock": "callrelay-twilio-mock", "pid": os.getpid(),
                                        "account_sid": self.account_sid}),
                            mimetype="application/json")
        auth = request.authorization
        endpoint = _endpoint(request)
        with self._lock:
            self._requests.append(RecordedRequest(
                request.method, request.path, request.args.to_dict(), request.form.to_dict(),
                dict(request.headers), auth.username if auth else None))
            failure = None
            if self._fail_left > 0 and self._fail_only in (None, endpoint):
                failure, self._fail_left = self._failure, self._fail_left - 1
            delay, generation = self.delay, self._generation
        if delay > 0:
            self._stopping.wait(delay)  # not time.sleep: stop() must not wait for a "hang"
        if failure is not None:
            return failure.response()
        try:
            self._authenticate(auth)
            endpoint, matched = _URLS.bind_to_environ(request.environ).match()
            args = dict(matched)
            if args.pop("account_sid") != self.account_sid:
                raise not_found(request.path)
            with self._lock:
                if generation != self._generation:
                    raise TwilioError(503, 20503, "The mock was reset during this request")
                status, body = getattr(self, f"_{endpoint}")(request, **args)
        except TwilioError as error:
            return error.response()
        except MethodNotAllowed:
            return TwilioError(405, 20004, "Method not allowed").response()
        except HTTPException:
            return not_found(request.path).response()
        return Response(None if body is None else json.dumps(body), status,
                        mimetype="application/json")

    def _authenticate(self, auth: Authorization | None) -> None:
        expected = self.credentials.get(auth.username or "") if auth is not None else None
        given = (auth.password or "") if auth is not None else ""
        if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            raise TwilioError(401, 20003, "Authenticate",
                              {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the mock as a sandbox until Ctrl-C or SIGTERM, printing what it receives."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sandbox.twilio_mock",
                                     description="Local mock of Twilio's call-message API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4010, help="0 picks a free port")
    parser.add_argument("--account-sid", default=env.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=env.get("TWILIO_AUTH_TOKEN"))
    parser.add_argument("--api-key", default=env.get("TWILIO_API_KEY"))
    parser.add_argument("--api-secret", default=env.get("TWILIO_API_SECRET"))
    args = parser.parse_args(argv)
    if not args.account_sid:
        parser.error("--account-sid or TWILIO_ACCOUNT_SID is required")
    credentials = {args.account_sid: args.auth_token} if args.auth_token else {}
    if args.api_key and args.api_secret:
        credentials[args.api_key] = args.api_secret
    if not credentials:
        parser.error("give --auth-token (TWILIO_AUTH_TOKEN) or TWILIO_API_KEY/TWILIO_API_SECRET")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops like Ctrl-C
    mock = TwilioMock(args.account_sid, credentials, on_event=_say)
    try:
        with mock.start(args.host, args.port):
            _say(f"twilio mock listening on {mock.base_url} for account {args.account_sid}")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        _say("twilio mock stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
