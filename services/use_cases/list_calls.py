"""The list_calls use case: GET /calls' filters, its pages, and their opaque cursors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from services.errors import ValidationFailed
from services.legs.model import LIVE, STATUS_RANK, Leg, is_call_sid
from services.store.legs import LegStore

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
MAX_IDENTITY_CHARS = 256
_PARAMS = {"identity", "status", "cursor", "limit"}
_CURSOR_PREFIX = "c1:"  # lets the cursor's form change without misreading old ones


@dataclass(frozen=True)
class CallQuery:
    """A validated GET /calls query."""

    identity: str | None = None
    statuses: frozenset[str] | None = None  # None: any status but a terminal one
    after: str | None = None  # the last call SID of the previous page
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True)
class CallPage:
    """One page of calls (each its legs, parent first), and the cursor of the next, if any."""

    calls: list[list[Leg]]
    next_cursor: str | None


def encode_cursor(call_sid: str) -> str:
    """The opaque cursor of the page that follows `call_sid`."""
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + call_sid).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The call SID a cursor continues after; ValidationFailed when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    sid = text.removeprefix(_CURSOR_PREFIX)
    if not text.startswith(_CURSOR_PREFIX) or not is_call_sid(sid):
        raise ValidationFailed("cursor is not a cursor GET /calls gave (pass next_cursor as "
                               "it is).", field="cursor")
    return sid


def parse_query(args: Mapping[str, str]) -> CallQuery:
    """Validate GET /calls' query parameters; ValidationFailed names the one at fault."""
    unknown = sorted(set(args) - _PARAMS)
    if unknown:
        raise ValidationFailed(f"Unknown query parameter(s): {', '.join(unknown)}; GET /calls "
                               "takes identity, status, cursor and limit.", fields=unknown)
    identity = args.get("identity")
    if identity is not None and not 0 < len(identity) <= MAX_IDENTITY_CHARS:
        raise ValidationFailed(f"identity must be 1 to {MAX_IDENTITY_CHARS} characters.",
                               field="identity")
    status = args.get("status")
    statuses: frozenset[str] | None = None
    if status == "live":
        statuses = LIVE
    elif status is not None:
        if status not in STATUS_RANK:
            raise ValidationFailed("status must be live or a leg state: "
                                   f"{', '.join(STATUS_RANK)}.", field="status")
        statuses = frozenset({status})
    limit = args.get("limit")
    if limit is not None and (not limit.isascii() or not limit.isdigit()
                              or not 1 <= int(limit) <= MAX_LIMIT):
        raise ValidationFailed(f"limit must be a whole number from 1 to {MAX_LIMIT}.",
                               field="limit")
    cursor = args.get("cursor")
    return CallQuery(identity=identity, statuses=statuses,
                     after=decode_cursor(cursor) if cursor is not None else None,
                     limit=int(limit) if limit is not None else DEFAULT_LIMIT)


def list_calls(store: LegStore, query: CallQuery) -> CallPage:
    """One page of the open calls that match the query, by call SID."""
    # One more than asked: whether it exists says whether there is a next page.
    calls = store.live_calls(query.limit + 1, after=query.after, identity=query.identity,
                             statuses=query.statuses)
    if len(calls) <= query.limit:
        return CallPage(calls, None)
    page = calls[:query.limit]
    return CallPage(page, encode_cursor(page[-1][0].root_sid))
