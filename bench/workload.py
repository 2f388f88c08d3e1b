"""Prepared requests for the load generators: signed status callbacks and /notify bodies.

A request file holds one request a line, tab-separated: method, path, headers (`Name: value`
joined by \\x1f) and body. Bodies are form-encoded or compact JSON, so they never hold a tab or
a newline. wrk (bench/replay.lua) and the Python loader (bench/pyload.py) both replay them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

# Identities cycle over this many users, so that a busy registry holds many ended legs per
# identity, as it would after a day of calls.
USERS = 5000
PHONE = "+15005550006"
# Calls whose callbacks are interleaved: the events of one leg are this many requests apart,
# so concurrency never reorders them and every callback moves its leg forward (a real write).
BLOCK = 2000


@dataclass(frozen=True)
class Prepared:
    """One HTTP request, ready to be replayed."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def line(self) -> str:
        """The request as one line of a request file."""
        headers = "\x1f".join(f"{name}: {value}" for name, value in self.headers)
        return f"{self.method}\t{self.path}\t{headers}\t{self.body}\n"


@dataclass(frozen=True)
class LiveCall:
    """A call whose parent leg carries a Voice SDK client, live in a seeded store."""

    parent_sid: str
    child_sid: str
    identity: str


def new_sid() -> str:
    """A random, well-formed Call SID."""
    return "CA" + secrets.token_hex(16)


def identity_for(n: int) -> str:
    """The Voice SDK identity of the n-th call."""
    return f"user-{n % USERS}"


def write_requests(path: Path, requests: Iterable[Prepared]) -> int:
    """Write a request file; returns how many requests it holds."""
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for request in requests:
            out.write(request.line())
            count += 1
    return count


def _status_params(account_sid: str, sid: str, status: str, identity: str, seq: int,
                   parent: str | None) -> dict[str, str]:
    caller = f"client:{identity}"
    params = {
        "AccountSid": account_sid, "ApiVersion": "2010-04-01", "CallSid": sid,
        "CallStatus": status, "Called": PHONE, "Caller": caller, "From": caller, "To": PHONE,
        "Direction": "outbound-dial" if parent else "inbound",
        "CalledCity": "", "CalledCountry": "US", "CalledState": "", "CalledZip": "",
        "CallbackSource": "call-progress-events", "SequenceNumber": str(seq),
        "Timestamp": formatdate(usegmt=True),
    }
    if parent:
        params["ParentCallSid"] = parent
    if status == "completed":
        params["CallDuration"] = "42"
        params["Duration"] = "1"
    return params


def status_callbacks(public_base: str, account_sid: str, auth_token: str, calls: int,
                     first_call: int = 0) -> Iterator[Prepared]:
    """Signed status callbacks for `calls` new calls: six per call, each moving a leg forward.

    A call: the SDK's parent leg rings, the child leg to a phone is initiated, rings, is
    answered and completes, then the parent completes.
    """
    url = public_base + "/twilio/status"
    validator = RequestValidator(auth_token)
    for start in range(0, calls, BLOCK):
        block = [(new_sid(), new_sid(), identity_for(first_call + start + i))
                 for i in range(min(BLOCK, calls - start))]
        steps: list[tuple[int, str, int, bool]] = [
            (0, "ringing", 0, False), (1, "initiated", 0, True), (2, "ringing", 1, True),
            (3, "in-progress", 2, True), (4, "completed", 3, True), (5, "completed", 1, False)]
        for _, status, seq, child in steps:
            for parent_sid, child_sid, identity in block:
                params = _status_params(account_sid, child_sid if child else parent_sid, status,
                                        identity, seq, parent_sid if child else None)
                signature = validator.compute_signature(url, params)
                yield Prepared("POST", "/twilio/status", (
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("X-Twilio-Signature", signature),
                    ("User-Agent", "TwilioProxy/1.1")), urlencode(params))


def notify_requests(targets: list[LiveCall], token: str, count: int, *,
                    by_identity: bool) -> Iterator[Prepared]:
    """`/notify` requests spread over `targets`: by call_sid, or alternately by identity."""
    headers = (("Content-Type", "application/json"), ("Authorization", f"Bearer {token}"))
    for i in range(count):
        call = targets[i % len(targets)]
        content = {"type": "offer", "price": 42, "seq": i}
        body: dict[str, object]
        if by_identity and i % 2:
            body = {"identity": call.identity, "content": content}
        else:
            body = {"call_sid": call.parent_sid, "content": content}
        yield Prepared("POST", "/notify", headers, json.dumps(body, separators=(",", ":")))
