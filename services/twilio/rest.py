"""The Twilio REST adapter: the only module that talks to twilio.rest."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from config.settings import Settings
from services.legs.model import STATUS_RANK, LegEvent
from services.observability.metrics import TwilioObserver, observed
from services.twilio.breaker import Breaker
from services.twilio.port import SentMessage
from services.twilio.retries import Retrier, RetryPolicy, retry_after_seconds

if TYPE_CHECKING:
    from twilio.rest.api import Api
    from twilio.rest.api.v2010.account.call import CallInstance

# Idle connections kept to Twilio per worker: at least the requests a worker may have waiting
# on Twilio at once (GUNICORN_CONNECTIONS), or every one beyond it reconnects and is discarded.
POOL_SIZE = 1000
# Live calls of one client per listing: a person is on one call, a shared identity on a few.
CLIENT_CALLS_LIMIT = 20


class _DeadlineHttpClient(TwilioHttpClient):
    """TwilioHttpClient whose timeout can be shortened per request (thread or greenlet) to fit
    its deadline."""

    def __init__(self, timeout: float, observer: TwilioObserver | None = None) -> None:
        super().__init__(timeout=timeout)
        self._local = threading.local()
        self.observer = observer

    def set_attempt_timeout(self, seconds: float | None) -> None:
        self._local.timeout = seconds

    def last_retry_after(self) -> float | None:
        """The Retry-After of this thread's last answer from Twilio, in seconds, if any."""
        return getattr(self._local, "retry_after", None)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = getattr(self._local, "timeout", None) or self.timeout
        self._local.retry_after = None
        response = observed(self.observer, method, url,
                            lambda: TwilioHttpClient.request(self, method, url, *args, **kwargs))
        # The SDK's exceptions do not carry headers: kept here for the Retrier.
        headers = response.headers or {}
        self._local.retry_after = retry_after_seconds(headers.get("Retry-After"))
        return response


def _tune_session(session: requests.Session | None, base_url: str) -> None:
    """Keep a connection per request in flight to Twilio, and read the proxy variables once."""
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


class _Client(Client):
    """The SDK's client, pointed at TWILIO_API_BASE_URL (a mock in development).

    The SDK imports its REST API's modules (every resource of an account: about 8 MiB of a
    worker's memory) on the first use of `api`, not before: a worker that only takes webhooks
    never loads them. The base URL is set then, rather than by touching `api` up front.
    """

    def __init__(self, *args: Any, api_base_url: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._api_base_url = api_base_url

    @property
    def api(self) -> Api:
        """The Api domain, pointed at the configured base URL."""
        first = self._api is None
        api: Api = Client.api.fget(self)  # type: ignore[attr-defined]
        if first:
            # A plain attribute of the API domain.
            api.base_url = self._api_base_url
        return api


class TwilioRestGateway:
    """TwilioGateway over the official SDK, with an explicit timeout and bounded retries."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep,
                 observer: TwilioObserver | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        username, password = settings.rest_credentials
        self.policy = RetryPolicy(deadline_s=settings.notify_deadline_s,
                                  attempt_timeout_s=settings.twilio_timeout_s)
        self.http = _DeadlineHttpClient(timeout=settings.twilio_timeout_s, observer=observer)
        # One breaker per process: Twilio's 429s concern the whole account.
        self.breaker = Breaker(clock=clock, observer=observer)
        self.retrier = Retrier(self.policy, self.http.set_attempt_timeout, sleep=sleep,
                               on_retry=observer.twilio_retry if observer else None,
                               breaker=self.breaker, retry_after=self.http.last_retry_after,
                               clock=clock)
        _tune_session(self.http.session, settings.twilio_api_base_url)
        self.client = _Client(username, password, settings.twilio_account_sid,
                              http_client=self.http, api_base_url=settings.twilio_api_base_url)

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        """Create a UserDefinedMessage, retrying 429/5xx with the same IdempotencyKey."""
        # Every attempt carries the same key, so a retried POST never shows the message twice.
        key = idempotency_key or f"callrelay-{uuid.uuid4()}"
        attempts = 0

        def create() -> SentMessage:
            nonlocal attempts
            attempts += 1
            msg = self.client.calls(call_sid).user_defined_messages.create(
                content=content, idempotency_key=key)
            created = msg.date_created
            return SentMessage(sid=msg.sid or "", call_sid=msg.call_sid or call_sid,
                               account_sid=msg.account_sid or "",
                               date_created=created.isoformat() if created else None,
                               attempts=attempts)

        return self.retrier.run(create, call_sid, "deliver the message", deadline)

    def fetch_call(self, call_sid: str, *, deadline: float | None = None) -> LegEvent | None:
        """The call as Twilio knows it now, or None when Twilio answers 404."""

        def fetch() -> LegEvent | None:
            try:
                return _event(self.client.calls(call_sid).fetch())
            except TwilioRestException as exc:
                if exc.status == 404:
                    return None
                raise

        return self.retrier.run(fetch, call_sid, "look the call up", deadline)

    def child_calls(self, parent_sid: str, *, deadline: float | None = None) -> list[LegEvent]:
        """The children of `parent_sid`: one page of at most 50 (a <Dial> rings a handful)."""

        def children() -> list[LegEvent]:
            # One request, never a walk of next_page_uri links: a server whose links never
            # end (Prism serving Twilio's examples) cannot hold a /notify for 50 round trips.
            page = self.client.calls.page(parent_call_sid=parent_sid, page_size=50)
            return [_event(c) for c in page]

        return self.retrier.run(children, parent_sid, "list the call's legs", deadline)

    def calls_for_client(self, identity: str, *,
                         deadline: float | None = None) -> list[LegEvent]:
        """Live calls to or from `client:<identity>`, in four small listings within `deadline`."""
        # To or From, ringing or in-progress: the Status filter takes one value. Without it
        # a listing would page through the client's whole call history.
        address = f"client:{identity}"
        found: list[LegEvent] = []
        for status in ("in-progress", "ringing"):
            for field in ("to", "from"):

                def listing(status: str = status, field: str = field) -> list[LegEvent]:
                    # One page each, as for child_calls: never a walk of next_page_uri links.
                    page = (self.client.calls.page(to=address, status=status,
                                                   page_size=CLIENT_CALLS_LIMIT)
                            if field == "to" else
                            self.client.calls.page(from_=address, status=status,
                                                   page_size=CLIENT_CALLS_LIMIT))
                    return [_event(call) for call in page]

                # The log field names no call: an identity is personal data.
                found += self.retrier.run(listing, "", "list the client's calls", deadline)
        return found

    def subscribe(self, call_sid: str, callback_url: str, idempotency_key: str) -> str:
        """Create a UserDefinedMessageSubscription, retrying 429/5xx with the same key."""

        def create() -> str:
            sub = self.client.calls(call_sid).user_defined_message_subscriptions.create(
                callback=callback_url, method="POST", idempotency_key=idempotency_key)
            return sub.sid or ""

        # In the background, where waiting costs nobody: not refused by an open breaker.
        return self.retrier.run(create, call_sid, "subscribe to the call's messages", None,
                                gated=False)


def _event(call: CallInstance) -> LegEvent:
    status = call.status if call.status in STATUS_RANK else "queued"
    return LegEvent(call_sid=call.sid or "", status=str(status),
                    parent_sid=call.parent_call_sid or None, account_sid=call.account_sid,
                    # The generated CallInstance names the `from` field `_from`.
                    from_=call._from, to=call.to, direction=call.direction)
