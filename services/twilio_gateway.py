"""The Twilio adapter: the only module that talks to twilio.rest or sees its exceptions."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from twilio.rest.api.v2010.account.call import CallInstance

from config.settings import Settings
from services.errors import TwilioRefused, TwilioTimeout, TwilioUnavailable
from services.legs import STATUS_RANK, LegEvent
from services.metrics import TwilioObserver, observed

log = logging.getLogger(__name__)
T = TypeVar("T")
# Idle connections kept to Twilio per worker: at least the requests a worker may have waiting
# on Twilio at once (GUNICORN_CONNECTIONS), or every one beyond it reconnects and is discarded.
POOL_SIZE = 1000


@dataclass(frozen=True)
class SentMessage:
    """A UserDefinedMessage Twilio accepted."""

    sid: str
    call_sid: str
    account_sid: str
    date_created: str | None


class TwilioGateway(Protocol):
    """What callrelay asks of Twilio."""

    # `deadline` (time.monotonic() based) bounds the call, retries included; None: the default.

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """Create a UserDefinedMessage on the call leg `call_sid`."""
        ...

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """The call as Twilio knows it now, or None when Twilio does not know it."""
        ...

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """The legs `<Dial>` created under `parent_sid`, as Twilio knows them now."""
        ...

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """Subscribe to the messages the SDK on `call_sid` sends; returns the ZY sid."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for 429/5xx/connection failures, bounded by a total deadline."""

    deadline_s: float = 15.0
    attempt_timeout_s: float = 10.0
    base_delay_s: float = 0.25
    max_delay_s: float = 2.0

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1)))


class _Retryable(Exception):
    def __init__(self, cause: Exception, status: int | None = None, code: int | None = None):
        super().__init__(str(cause))
        self.cause, self.status, self.code = cause, status, code


class _DeadlineHttpClient(TwilioHttpClient):
    """TwilioHttpClient whose timeout can be shortened per thread to fit a request's deadline."""

    def __init__(self, timeout: float, observer: TwilioObserver | None = None) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        self.observer = observer

    def set_attempt_timeout(self, seconds: float | None) -> None:
        self._local.timeout = seconds

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = getattr(self._local, "timeout", None) or self.timeout
        return observed(self.observer, method, url,
                        lambda: TwilioHttpClient.request(self, method, url, *args, **kwargs))


def _tune_session(session: requests.Session | None, base_url: str) -> None:
    """Keep a connection per thread to Twilio, and read the proxy variables once, not per call."""
    if session is None:
        return
    # The SDK pools min(32, cores + 4) https connections: with more threads than that, every
    # call beyond the pool opened a connection (a TLS handshake) and closed it after use.
    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # requests scans all of os.environ for proxy and CA-bundle variables on every call; a
    # worker's environment does not change, so resolve them once for Twilio's host.
    resolved = session.merge_environment_settings(base_url, {}, None, None, None)
    session.trust_env = False
    session.proxies.update(resolved["proxies"])
    session.verify = resolved["verify"]


class TwilioRestGateway:
    """TwilioGateway over the official SDK, with an explicit timeout and bounded retries."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 observer: TwilioObserver | None = None) -> None:
        username, password = settings.rest_credentials
        self.policy = RetryPolicy(deadline_s=settings.notify_deadline_s,
                                  attempt_timeout_s=settings.twilio_timeout_s)
        self.observer = observer
        self.http = _DeadlineHttpClient(timeout=settings.twilio_timeout_s, observer=observer)
        _tune_session(self.http.session, settings.twilio_api_base_url)
        self.client = Client(username, password, settings.twilio_account_sid,
                             http_client=self.http)
        # A plain attribute of the API domain: points the SDK at a mock in development.
        self.client.api.base_url = settings.twilio_api_base_url
        self.sleep = sleep

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """Create a UserDefinedMessage, retrying 429/5xx with the same IdempotencyKey."""
        # Every attempt carries the same key, so a retried POST never shows the message twice.
        key = idempotency_key or f"callrelay-{uuid.uuid4()}"

        def create() -> SentMessage:
            msg = self.client.calls(call_sid).user_defined_messages.create(
                content=content, idempotency_key=key)
            created = msg.date_created
            return SentMessage(sid=msg.sid or "", call_sid=msg.call_sid or call_sid,
                               account_sid=msg.account_sid or "",
                               date_created=created.isoformat() if created else None)

        return self._with_retries(create, call_sid, "deliver the message", deadline)

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """The call as Twilio knows it now, or None when Twilio answers 404."""

        def fetch() -> LegEvent | None:
            try:
                return _event(self.client.calls(call_sid).fetch())
            except TwilioRestException as exc:
                if exc.status == 404:
                    return None
                raise

        return self._with_retries(fetch, call_sid, "look the call up", deadline)

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """The children of `parent_sid` (at most 50: a <Dial> rings a handful at most)."""

        def children() -> list[LegEvent]:
            return [_event(c) for c in self.client.calls.list(parent_call_sid=parent_sid,
                                                              limit=50)]

        return self._with_retries(children, parent_sid, "list the call's legs", deadline)

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """Create a UserDefinedMessageSubscription, retrying 429/5xx with the same key."""

        def create() -> str:
            sub = self.client.calls(call_sid).user_defined_message_subscriptions.create(
                callback=callback_url, method="POST", idempotency_key=idempotency_key)
            return sub.sid or ""

        return self._with_retries(create, call_sid, "subscribe to the call's messages", None)

    def _with_retries(self, operation: Callable[[], T], call_sid: str, what: str,
                      deadline: float | None) -> T:
        if deadline is None:
            deadline = time.monotonic() + self.policy.deadline_s
        attempt = 0
        last: _Retryable | None = None
        try:
            while True:
                attempt += 1
                remaining = deadline - time.monotonic()
                if remaining < 0.1:
                    if last is not None:  # the backoff sleep overran: report what failed
                        raise _give_up(last, attempt - 1, what) from last.cause
                    raise TwilioTimeout(f"No time was left to {what} before the deadline.",
                                        attempts=0)
                self.http.set_attempt_timeout(min(self.policy.attempt_timeout_s, remaining))
                try:
                    return _attempt(operation, what)
                except _Retryable as failure:
                    last = failure
                    delay = self.policy.delay(attempt)
                    if time.monotonic() + delay + 0.1 >= deadline:
                        raise _give_up(failure, attempt, what) from failure.cause
                    log.warning("twilio attempt failed, retrying", extra={
                        "call_sid": call_sid, "attempt": attempt,
                        "twilio_status": failure.status})
                    if self.observer is not None:
                        self.observer.twilio_retry(_reason(failure))
                    self.sleep(delay)
        finally:
            self.http.set_attempt_timeout(None)


def _event(call: CallInstance) -> LegEvent:
    status = call.status if call.status in STATUS_RANK else "queued"
    return LegEvent(call_sid=call.sid or "", status=str(status),
                    parent_sid=call.parent_call_sid or None, account_sid=call.account_sid,
                    # The generated CallInstance names the `from` field `_from`.
                    from_=call._from, to=call.to, direction=call.direction)


def _status_and_code(exc: TwilioException) -> tuple[int | None, int | None, str]:
    if isinstance(exc, TwilioRestException):
        return exc.status, exc.code, exc.msg
    if isinstance(exc, TwilioServiceException):
        return exc.status, exc.code, exc.detail or exc.title
    return None, None, exc.__class__.__name__


def _attempt(operation: Callable[[], T], what: str) -> T:
    try:
        return operation()
    except TwilioException as exc:
        status, code, message = _status_and_code(exc)
        if status is not None and (status == 429 or status >= 500):
            raise _Retryable(exc, status, code) from exc
        raise TwilioRefused(f"Twilio refused to {what}: {message}",
                            twilio_status=status, twilio_code=code) from exc
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise _Retryable(exc) from exc


def _reason(failure: _Retryable) -> str:
    if failure.status is not None:
        return str(failure.status)
    return "timeout" if isinstance(failure.cause, requests.Timeout) else "connection"


def _give_up(failure: _Retryable, attempts: int, what: str) -> Exception:
    if isinstance(failure.cause, requests.Timeout):
        return TwilioTimeout(f"Twilio did not answer in time; could not {what}.",
                             attempts=attempts)
    if failure.status is None:
        return TwilioUnavailable(f"Twilio could not be reached; could not {what}.",
                                 attempts=attempts)
    return TwilioUnavailable(f"Twilio is overloaded or failing; could not {what}.",
                             twilio_status=failure.status, twilio_code=failure.code,
                             attempts=attempts)
