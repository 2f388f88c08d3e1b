"""Sending one /notify message to its target legs: every leg tried, each with its own key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass

from services.errors import RelayError
from services.legs.model import Leg
from services.twilio.port import SentMessage, TwilioGateway

MAX_IDEMPOTENCY_KEY_CHARS = 255  # what /notify accepts; Twilio's spec states no maximum
# Legs sent to at once: an identity is rarely on more than one or two calls, a conference has
# a few SDK participants; more than this wait for a free thread (within the same deadline).
MAX_PARALLEL_LEGS = 8


@dataclass(frozen=True)
class Failure:
    """A leg whose message Twilio did not take, and why."""

    leg: Leg
    error: RelayError


@dataclass(frozen=True)
class Attempt:
    """One target leg of a message: the key it was sent with, and what Twilio answered."""

    leg: Leg
    idempotency_key: str | None
    outcome: SentMessage | RelayError


@dataclass(frozen=True)
class Delivery:
    """What became of one message sent to several legs (at least one of them got it)."""

    sent: list[tuple[Leg, SentMessage]]
    failed: list[Failure]


def leg_key(key: str | None, leg_sid: str) -> str | None:
    """The IdempotencyKey for one leg: a fixed function of the caller's key and the leg."""
    if key is None:
        return None
    derived = f"{key}:{leg_sid}"
    if len(derived) <= MAX_IDEMPOTENCY_KEY_CHARS:
        return derived
    # A key near the limit leaves no room for the SID: its digest does, just as uniquely.
    return f"{hashlib.sha256(key.encode()).hexdigest()}:{leg_sid}"


def choose_error(failures: list[Failure]) -> RelayError:
    """The error to answer with when no leg got the message, the same for the same failures.

    The first leg (in call SID order) whose failure a retry may cure (503, 504) wins, so that
    a caller who would retry does; otherwise the first leg's error.
    """
    retryable = [f for f in failures if f.error.status in (503, 504)]
    return (retryable or failures)[0].error


def deliver(twilio: TwilioGateway, legs: list[Leg], content: str, key: str | None, *,
            per_leg_keys: bool, deadline: float,
            record: Callable[[list[Attempt]], None] | None = None) -> Delivery:
    """Send `content` to every leg within one deadline; raise only when no leg got it.

    `record` is told every leg's outcome before anything is answered (it must not raise).
    """
    if not legs:
        raise ValueError("deliver needs at least one leg; the caller explains why there is none")
    legs = sorted(legs, key=lambda leg: leg.call_sid)  # a stable order: the same error each time
    keys = [leg_key(key, leg.call_sid) if per_leg_keys else key for leg in legs]

    def send(leg: Leg, its_key: str | None) -> SentMessage | RelayError:
        try:
            return twilio.send_message(leg.call_sid, content, its_key, deadline=deadline)
        except RelayError as error:
            return error

    if len(legs) == 1:
        outcomes = [send(legs[0], keys[0])]
    else:
        # In parallel, so one slow leg does not use up the others' share of the deadline. Each
        # task runs in a copy of this context: log records keep the request's id.
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_LEGS, len(legs)),
                                thread_name_prefix="notify") as pool:
            futures = [pool.submit(copy_context().run, send, leg, its_key)
                       for leg, its_key in zip(legs, keys, strict=True)]
            outcomes = [future.result() for future in futures]
    if record is not None:
        record([Attempt(*a) for a in zip(legs, keys, outcomes, strict=True)])
    sent = [(leg, out) for leg, out in zip(legs, outcomes, strict=True)
            if isinstance(out, SentMessage)]
    failed = [Failure(leg, out) for leg, out in zip(legs, outcomes, strict=True)
              if isinstance(out, RelayError)]
    if not sent:
        raise choose_error(failed)
    return Delivery(sent, failed)
