"""A fake of the Twilio port for unit tests: records every request, fails on command.

It holds the calls Twilio "knows" (for `fetch_call` and `child_calls`) and the messages it
accepted. Like Twilio, it answers the same IdempotencyKey on the same call with the same
message, and refuses (400, 21220) a message for a call it knows is not live. The HTTP boundary
is tested with the real SDK against sandbox/twilio_mock.py; this fake is for the use cases.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, replace

from services.errors import RelayError, TwilioRefused
from services.legs.model import LIVE, LegEvent
from services.twilio.port import SentMessage

ACCOUNT_SID = "AC" + "f" * 32
METHODS = ("send_message", "fetch_call", "child_calls", "subscribe")


@dataclass(frozen=True)
class Request:
    """One call the code under test made to the gateway, whatever came of it."""

    method: str
    call_sid: str
    content: str | None = None
    idempotency_key: str | None = None
    callback_url: str | None = None
    deadline: float | None = None
    at: float = 0.0  # time.monotonic() when it was made
    error: str | None = None  # the code of the error raised; None when it succeeded


@dataclass
class _Failure:
    method: str
    error: RelayError
    times: int | None  # None: until `heal()`
    call_sid: str | None


def _sid(prefix: str, *parts: str) -> str:
    return prefix + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class FakeTwilio:
    """TwilioGateway that records, knows the calls it is told about, and fails on command."""

    def __init__(self, account_sid: str = ACCOUNT_SID, latency_s: float = 0.0) -> None:
        self.account_sid = account_sid
        self.latency_s = latency_s  # each request takes this long (to let requests race)
        self.requests: list[Request] = []
        self.known: dict[str, LegEvent] = {}
        self.messages: list[SentMessage] = []
        self.subscriptions: dict[str, str] = {}  # call SID -> ZY SID
        self._by_key: dict[tuple[str, str], SentMessage] = {}
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()

    # --- what the test sets up and looks at ----------------------------------------------

    def knows(self, *events: LegEvent) -> None:
        """Twilio knows these calls now (fetch_call and child_calls answer with them)."""
        with self._lock:
            for event in events:
                self.known[event.call_sid] = event

    def fail(self, method: str, error: RelayError, *, times: int | None = 1,
             call_sid: str | None = None) -> None:
        """Raise `error` from the next `times` calls of `method` (None: every call)."""
        if method not in METHODS:
            raise ValueError(f"the Twilio port has no {method!r}")
        with self._lock:
            self._failures.append(_Failure(method, error, times, call_sid))

    def heal(self) -> None:
        """Forget every failure not yet raised."""
        with self._lock:
            self._failures.clear()

    def made(self, method: str, call_sid: str | None = None) -> list[Request]:
        """The requests of `method` (to `call_sid`, if given), in the order they were made."""
        with self._lock:
            return [r for r in self.requests if r.method == method
                    and (call_sid is None or r.call_sid == call_sid)]

    def keys(self) -> dict[str, str | None]:
        """The IdempotencyKey of the last message request to each call SID."""
        return {r.call_sid: r.idempotency_key for r in self.made("send_message")}

    # --- the port ------------------------------------------------------------------------

    def _record(self, request: Request, refusal: RelayError | None = None) -> None:
        """Record the request, then raise the failure set up for it (or `refusal`), if any."""
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            failure = next((f for f in self._failures if f.method == request.method and
                            f.call_sid in (None, request.call_sid)), None)
            if failure is not None and failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
            error = failure.error if failure is not None else refusal
            self.requests.append(replace(request, at=time.monotonic(),
                                         error=error.code if error else None))
        if error is not None:
            raise error

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """Accept a UserDefinedMessage, once per (call, IdempotencyKey)."""
        with self._lock:
            call = self.known.get(call_sid)
        refusal = None
        if call is not None and call.status not in LIVE:
            refusal = TwilioRefused("Twilio refused to deliver the message: the call is not "
                                    "in progress.", twilio_status=400, twilio_code=21220)
        self._record(Request("send_message", call_sid, content=content,
                             idempotency_key=idempotency_key, deadline=deadline), refusal)
        with self._lock:
            key = (call_sid, idempotency_key or f"no-key-{len(self.requests)}")
            sent = self._by_key.get(key)
            if sent is None:
                sent = SentMessage(sid=_sid("KX", *key), call_sid=call_sid,
                                   account_sid=self.account_sid,
                                   date_created="2026-11-27T10:00:00+00:00")
                self._by_key[key] = sent
                self.messages.append(sent)
            return sent

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """The call if Twilio knows it, else None (Twilio's 404)."""
        self._record(Request("fetch_call", call_sid, deadline=deadline))
        with self._lock:
            return self.known.get(call_sid)

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """The known calls whose parent is `parent_sid`."""
        self._record(Request("child_calls", parent_sid, deadline=deadline))
        with self._lock:
            return [e for e in self.known.values() if e.parent_sid == parent_sid]

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        """The known live calls to or from `client:<identity>`."""
        self._record(Request("calls_for_client", f"client:{identity}", deadline=deadline))
        address = f"client:{identity}"
        with self._lock:
            return [e for e in self.known.values() if e.status in ("ringing", "in-progress")
                    and address in (e.from_, e.to)]

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """Subscribe to the call's SDK messages, once per call."""
        self._record(Request("subscribe", call_sid, callback_url=callback_url,
                             idempotency_key=idempotency_key))
        with self._lock:
            return self.subscriptions.setdefault(call_sid, _sid("ZY", call_sid))
