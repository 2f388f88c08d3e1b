"""A small local mock of the Twilio REST endpoints callrelay uses, for tests and as a sandbox.

In tests: `with TwilioMock(sid, {sid: token}).start() as mock:` and point the SDK at it with
`client.api.base_url = mock.base_url`. As a sandbox: `python -m sandbox.twilio_mock --port 4010`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import urlencode, urlsplit

from werkzeug.datastructures import Authorization
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

LIVE_STATUSES = frozenset({"ringing", "in-progress"})
TERMINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MAX_CONTENT_CHARS = 10_000
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


def _endpoint(request: Request) -> str | None:
    """The endpoint a request is for, or None when no route matches it."""
    try:
        endpoint, _ = _URLS.bind_to_environ(request.environ).match()
    except HTTPException:
        return None
    return str(endpoint)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the mock received, whatever it answered."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    username: str | None


@dataclass
class RecordedMessage:
    """A UserDefinedMessage the mock accepted."""

    sid: str
    call_sid: str
    content: str
    idempotency_key: str | None
    date_created: str


@dataclass
class RecordedSubscription:
    """A UserDefinedMessageSubscription the mock accepted; `active` turns False on DELETE."""

    sid: str
    call_sid: str
    callback: str
    method: str
    idempotency_key: str | None
    date_created: str
    active: bool = True


@dataclass
class MockCall:
    """A call leg registered with `TwilioMock.set_call`."""

    sid: str
    status: str
    parent_call_sid: str | None = None
    from_: str | None = None
    to: str | None = None
    direction: str = "inbound"
    date_created: str = field(default_factory=lambda: _now())
    date_updated: str = field(default_factory=lambda: _now())


class TwilioError(Exception):
    """A Twilio-shaped error answer: HTTP status, Twilio code, message."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> Response:
        """The JSON error body Twilio sends."""
        body = {"code": self.code, "message": self.message, "status": self.status,
                "more_info": f"https://www.twilio.com/docs/errors/{self.code}"}
        return Response(json.dumps(body), self.status, self.headers, mimetype="application/json")


def _not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def _now() -> str:
    return format_datetime(datetime.now(UTC))  # RFC 2822, as Twilio writes dates


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Keep test output clean: no access log."""


class TwilioMock:
    """An in-process HTTP server answering like Twilio's 2010-04-01 API for call messages."""

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
            self._calls[sid] = (replace(old, status=status, date_updated=_now(), **changes)
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
                raise _not_found(request.path)
            with self._lock:
                if generation != self._generation:
                    raise TwilioError(503, 20503, "The mock was reset during this request")
                status, body = getattr(self, f"_{endpoint}")(request, **args)
        except TwilioError as error:
            return error.response()
        except MethodNotAllowed:
            return TwilioError(405, 20004, "Method not allowed").response()
        except HTTPException:
            return _not_found(request.path).response()
        return Response(None if body is None else json.dumps(body), status,
                        mimetype="application/json")

    def _authenticate(self, auth: Authorization | None) -> None:
        expected = self.credentials.get(auth.username or "") if auth is not None else None
        given = (auth.password or "") if auth is not None else ""
        if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
            raise TwilioError(401, 20003, "Authenticate",
                              {"WWW-Authenticate": 'Basic realm="Twilio API"'})

    def _require_live(self, call_sid: str, path: str, what: str) -> None:
        call = self._calls.get(call_sid)
        if call is None and self.strict_calls:
            raise _not_found(path)
        if call is not None and call.status not in LIVE_STATUSES:
            raise TwilioError(400, 21220, f"Invalid call state: call is {call.status}, "
                              f"not ringing or in-progress. Cannot create {what}.")

    def _emit(self, line: str) -> None:
        if self.on_event is not None:
            self.on_event(line)

    def _call_uri(self, call_sid: str) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}"

    def _call_json(self, call: MockCall) -> dict[str, Any]:
        uri = self._call_uri(call.sid)
        ended = call.status in TERMINAL_STATUSES
        return {
            "sid": call.sid, "parent_call_sid": call.parent_call_sid,
            "account_sid": self.account_sid, "from": call.from_, "from_formatted": call.from_,
            "to": call.to, "to_formatted": call.to, "status": call.status,
            "direction": call.direction, "api_version": "2010-04-01",
            "date_created": call.date_created, "date_updated": call.date_updated,
            "start_time": call.date_created, "end_time": call.date_updated if ended else None,
            "duration": None, "price": None, "price_unit": "USD", "answered_by": None,
            "caller_name": None, "forwarded_from": None, "group_sid": None, "queue_time": "0",
            "phone_number_sid": None, "trunk_sid": None, "annotation": None,
            "subresource_uris": {
                "user_defined_messages": f"{uri}/UserDefinedMessages.json",
                "user_defined_message_subscriptions": f"{uri}/UserDefinedMessageSubscriptions.json",
            },
            "uri": f"{uri}.json",
        }

    def _fetch_call(self, request: Request, call_sid: str) -> tuple[int, Any]:
        call = self._calls.get(call_sid)
        if call is None:
            raise _not_found(request.path)
        return 200, self._call_json(call)

    def _list_calls(self, request: Request) -> tuple[int, Any]:
        filters = {name: request.args[name] for name in ("ParentCallSid", "Status", "To", "From")
                   if name in request.args}
        try:
            size = min(max(int(request.args.get("PageSize", 50)), 1), 1000)
            page = max(int(request.args.get("Page", 0)), 0)
        except ValueError as exc:
            raise TwilioError(400, 20001, "Invalid paging parameter") from exc
        matches = [call for call in reversed(self._calls.values())  # newest first, as Twilio
                   if filters.get("ParentCallSid", call.parent_call_sid) == call.parent_call_sid
                   and filters.get("Status", call.status) == call.status
                   and filters.get("To", call.to) == call.to
                   and filters.get("From", call.from_) == call.from_]
        start = page * size
        rows = matches[start:start + size]

        def page_uri(number: int) -> str:
            query = urlencode({**filters, "PageSize": size, "Page": number})
            return f"/2010-04-01/Accounts/{self.account_sid}/Calls.json?{query}"

        return 200, {
            "calls": [self._call_json(call) for call in rows],
            "first_page_uri": page_uri(0), "uri": page_uri(page),
            "next_page_uri": page_uri(page + 1) if start + size < len(matches) else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "page": page, "page_size": size, "start": start,
            "end": start + max(len(rows) - 1, 0),
        }

    def _create_message(self, request: Request, call_sid: str) -> tuple[int, Any]:
        key = request.form.get("IdempotencyKey") or None
        # A known key on the same call replays the first answer: how Twilio de-duplicates retries.
        message = next((m for m in self._messages if key and (m.call_sid, m.idempotency_key)
                        == (call_sid, key)), None) or self._new_message(request, call_sid, key)
        return 201, {"account_sid": self.account_sid, "call_sid": message.call_sid,
                     "sid": message.sid, "date_created": message.date_created}

    def _new_message(self, request: Request, call_sid: str, key: str | None) -> RecordedMessage:
        content = request.form.get("Content")
        if content is not None and len(content) > MAX_CONTENT_CHARS:
            raise TwilioError(400, 32703, "Content size exceeds the limit of "
                              f"{MAX_CONTENT_CHARS} characters ({len(content)} given)")
        try:
            parsed = json.loads(content or "")
        except ValueError as exc:
            raise TwilioError(400, 32702, "Invalid content in the POST request to the "
                              "UserDefinedMessage Resource. Only data in JSON format is "
                              "supported.") from exc
        self._require_live(call_sid, request.path, "UserDefinedMessage")
        message = RecordedMessage("KX" + secrets.token_hex(16), call_sid, content or "", key,
                                  _now())
        self._messages.append(message)
        self._emit(f"message {call_sid} {message.sid} "
                   f"{json.dumps(parsed, ensure_ascii=False, separators=(',', ':'))}")
        return message

    def _create_subscription(self, request: Request, call_sid: str) -> tuple[int, Any]:
        key = request.form.get("IdempotencyKey") or None
        sub = next((s for s in self._subscriptions if key and (s.call_sid, s.idempotency_key)
                    == (call_sid, key)), None) or self._new_subscription(request, call_sid, key)
        return 201, {"account_sid": self.account_sid, "call_sid": sub.call_sid, "sid": sub.sid,
                     "date_created": sub.date_created,
                     "uri": f"{self._call_uri(call_sid)}/UserDefinedMessageSubscriptions/"
                            f"{sub.sid}.json"}

    def _new_subscription(self, request: Request, call_sid: str,
                          key: str | None) -> RecordedSubscription:
        callback = request.form.get("Callback")
        if not callback:
            raise TwilioError(400, 20001, "Missing required parameter Callback in the post body")
        try:
            parts = urlsplit(callback)
            scheme, host = parts.scheme, parts.hostname
        except ValueError:
            scheme, host = "", None
        if scheme not in ("http", "https") or not host or "_" in host:
            raise TwilioError(400, 11100, f"Callback is not a valid URL: {callback}")
        method = request.form.get("Method", "POST").upper()
        if method not in ("GET", "POST"):
            raise TwilioError(400, 21209, "Method must be GET or POST")
        self._require_live(call_sid, request.path, "UserDefinedMessageSubscription")
        sub = RecordedSubscription("ZY" + secrets.token_hex(16), call_sid, callback, method, key,
                                   _now())
        self._subscriptions.append(sub)
        self._emit(f"subscription {call_sid} {sub.sid} {method} {callback}")
        return sub

    def _delete_subscription(self, request: Request, call_sid: str, sid: str) -> tuple[int, Any]:
        sub = next((s for s in self._subscriptions
                    if (s.sid, s.call_sid, s.active) == (sid, call_sid, True)), None)
        if sub is None:
            raise _not_found(request.path)
        sub.active = False
        self._emit(f"unsubscribe {call_sid} {sid}")
        return 204, None


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
