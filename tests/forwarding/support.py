"""Test helpers for forwarding: a real local backend, fast timings, Twilio-signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from standardwebhooks import Webhook
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.test import TestResponse
from werkzeug.wrappers import Request, Response

from services.forwarding.delivery import Backoff, DeliveryOptions
from services.forwarding.service import ForwardingOptions
from services.forwarding.subscriptions import SubscriptionOptions
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE, sign

AppFactory = Callable[..., Flask]
SECRET = "whsec_" + base64.b64encode(b"callrelay-forwarding-test-secret").decode()
FAST = ForwardingOptions(
    delivery=DeliveryOptions(backoff=Backoff(base_s=0.01, cap_s=0.05), lease_s=5.0,
                            poll_s=0.05, timeout_s=2.0),
    subscription=SubscriptionOptions(attempts=3, delay_s=0.01))


@dataclass(frozen=True)
class Delivery:
    """One POST the backend received, whatever it answered."""

    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str = SECRET) -> Any:
        """The event, after checking its signature with the standardwebhooks library."""
        return Webhook(secret).verify(self.body, self.headers)


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No access log in test output."""


class Backend:
    """A real HTTP server standing in for the backend: answers as `answer` decides."""

    def __init__(self, port: int = 0) -> None:
        self.deliveries: list[Delivery] = []
        self.answer: Callable[[Delivery], int] = lambda _: 204
        self._changed = threading.Condition()
        self._server: BaseWSGIServer = make_server("127.0.0.1", port, self._wsgi, threaded=True,
                                                   request_handler=_Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/hooks/callrelay"

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        seen = Delivery({k.lower(): v for k, v in request.headers.items()}, request.get_data(), 0)
        status = self.answer(seen)
        with self._changed:
            self.deliveries.append(Delivery(seen.headers, seen.body, status))
            self._changed.notify_all()
        return Response(status=status)(environ, start_response)

    def accepted(self) -> list[Delivery]:
        """The deliveries answered with a 2xx, in arrival order."""
        with self._changed:
            return [d for d in self.deliveries if 200 <= d.status < 300]

    def wait_for(self, predicate: Callable[[list[Delivery]], bool], timeout_s: float = 20.0
                 ) -> list[Delivery]:
        """Wait until `predicate(deliveries)` holds (a hang fails the test, not a slow run)."""
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(list(self.deliveries)), timeout_s), \
                [(d.id, d.status) for d in self.deliveries]
            return list(self.deliveries)

    def wait_accepted(self, n: int, timeout_s: float = 20.0) -> list[Delivery]:
        """Wait for `n` accepted deliveries; returns the accepted ones."""
        self.wait_for(lambda ds: sum(200 <= d.status < 300 for d in ds) >= n, timeout_s)
        return self.accepted()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def new_message_sid() -> str:
    return "KX" + secrets.token_hex(16)


def sdk_message(call_sid: str, content: Any, seq: int = 1, sid: str | None = None,
                sent_at: float | None = None) -> dict[str, Any]:
    """The fields of Twilio's subscription callback for one SDK message, sent now (or at
    `sent_at`, epoch seconds)."""
    stamp = datetime.fromtimestamp(time.time() if sent_at is None else sent_at, UTC)
    return {"ContentType": "application/json", "Content": json.dumps(content),
            "SequenceNumber": seq, "CallSid": call_sid,
            "Timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccountSid": ACCOUNT_SID, "Sid": sid or new_message_sid()}


def post_json(client: FlaskClient, fields: dict[str, Any], *, body: bytes | None = None,
              signature: str | None = None, path: str = "/twilio/messages") -> TestResponse:
    """POST fields as Twilio posts JSON: bodySHA256 in the URL, the URL signed without params."""
    raw = json.dumps(fields).encode() if body is None else body
    url = f"{path}?bodySHA256={hashlib.sha256(raw).hexdigest()}"
    sig = sign(PUBLIC_BASE + url, {}) if signature is None else signature
    return client.post(url, data=raw, content_type="application/json",
                       headers={"X-Twilio-Signature": sig})


def post_form(client: FlaskClient, fields: dict[str, Any], *, signature: str | None = None
              ) -> TestResponse:
    """POST fields as a signed form, the other way Twilio may call back."""
    form = {k: str(v) for k, v in fields.items()}
    sig = sign(PUBLIC_BASE + "/twilio/messages", form) if signature is None else signature
    return client.post("/twilio/messages", data=form, headers={"X-Twilio-Signature": sig})


def outbox_rows(app: Flask) -> list[tuple[str, str, int]]:
    """(id, state, attempts) of every event the app's SQLite outbox holds, in queue order."""
    path = app.config["SETTINGS"].store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        return db.execute("SELECT id, state, attempts FROM outbox ORDER BY seq").fetchall()


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll `condition` until it holds; a hang fails the test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def stop_app(app: Flask) -> None:
    """Stop forwarding (its queued events stay in the outbox) and close the store."""
    forwarding = app.extensions.get("callrelay.forwarding")
    if forwarding is not None:
        forwarding.stop()
    app.extensions["callrelay.store"].close()
