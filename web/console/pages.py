"""The console's pages and the JSON its script polls: live calls, one call, conferences, dead
letters. They read the stores only when someone looks: a callback costs the console nothing."""

from __future__ import annotations

import secrets
import time
from typing import Any

from flask import Blueprint, render_template, request

from services.errors import CallNotFound, ConferenceNotFound, RelayError
from services.legs.conferences import conference_ref
from services.legs.model import Leg, is_call_sid
from services.use_cases.conference_targets import find_conference, participant_legs
from web.console.parts import ConsoleParts
from web.console.views import (
    call_view,
    clean_filter,
    conference_names,
    conference_view,
    dead_view,
    iso,
    matches,
    message_view,
)

DEAD_SHOWN = 200
# Calls a page lists: more than people read; the filter finds the others.
CALLS_SHOWN = 200


def _newest_first(calls: list[list[Leg]]) -> list[list[Leg]]:
    return sorted(calls, key=lambda legs: max(leg.updated_at for leg in legs), reverse=True)


def register_pages(bp: Blueprint, parts: ConsoleParts) -> None:
    """Add the pages (GET) to the console's blueprint."""

    def live_calls(needle: str) -> tuple[list[dict[str, Any]], bool]:
        """The live calls that match (newest activity first), at most CALLS_SHOWN; and
        whether there are more."""
        if is_call_sid(needle):  # a whole SID: one lookup, not a scan
            leg = parts.legs.get(needle)
            found = [parts.legs.call_legs(leg.root_sid)] if leg is not None else []
            calls = [legs for legs in found if not all(x.is_ended for x in legs)]
        elif needle:  # a part of an identity or SID: every live call is read (the store's 1000)
            calls = [legs for legs in parts.legs.live_calls() if legs and matches(legs, needle)]
        else:  # what an open calls page polls: bounded, whatever the number of calls
            calls = [legs for legs in parts.legs.live_calls(CALLS_SHOWN + 1) if legs]
        shown = _newest_first(calls)[:CALLS_SHOWN]
        return [call_view(legs) for legs in shown], len(calls) > CALLS_SHOWN

    def one_call(call_sid: str) -> dict[str, Any]:
        leg = parts.legs.get(call_sid) if is_call_sid(call_sid) else None
        if leg is None:
            raise CallNotFound("callrelay knows no call with this SID (or it ended more than "
                               "LEG_RETENTION_S ago).", call_sid=call_sid)
        return call_view(parts.legs.call_legs(leg.root_sid))

    def timeline(call: dict[str, Any]) -> list[dict[str, Any]] | None:
        if parts.history is None:
            return None
        return [message_view(m) for m in parts.history.messages(call["call_sid"])]

    @bp.get("", strict_slashes=False)
    def calls() -> str:
        """Live calls and their legs, filtered by identity or SID; the script keeps it live."""
        needle = clean_filter(request.args.get("q"))
        calls, more = live_calls(needle)
        return render_template("console/calls.html", page="calls", q=needle, calls=calls,
                               more=more, shown_max=CALLS_SHOWN, now=iso(time.time()))

    @bp.get("/api/calls")
    def api_calls() -> dict[str, Any]:
        """What the calls page polls: the live calls that match `q`."""
        calls, more = live_calls(clean_filter(request.args.get("q")))
        return {"calls": calls, "more": more, "now": iso(time.time())}

    @bp.get("/calls/<call_sid>")
    def call(call_sid: str) -> str:
        """One call: its legs, its message timeline, and a form to send it a test message."""
        shown = one_call(call_sid)
        return render_template("console/call.html", page="calls", call=shown,
                               messages=timeline(shown), now=iso(time.time()),
                               idempotency_key=f"console-{secrets.token_hex(8)}")

    @bp.get("/api/calls/<call_sid>")
    def api_call(call_sid: str) -> dict[str, Any]:
        """What the call page polls: the call's legs and its messages."""
        shown = one_call(call_sid)
        return {"call": shown, "messages": timeline(shown), "now": iso(time.time())}

    @bp.get("/conferences")
    def conferences() -> str:
        """Conferences that live calls are in, and any other looked up by name or CF SID."""
        ref = clean_filter(request.args.get("ref"))
        found: dict[str, dict[str, Any]] = {}
        error = None
        if ref:
            try:
                conference = find_conference(parts.conferences, conference_ref(ref))
                found[conference.sid] = conference_view(
                    conference, participant_legs(conference, parts.legs))
            except RelayError as exc:
                error = exc.message
        for name in conference_names(parts.legs.live_calls()):
            try:
                conference = find_conference(parts.conferences, name)
            except ConferenceNotFound:
                continue  # dialled, but Twilio has not reported it started yet
            if conference.sid not in found:
                found[conference.sid] = conference_view(
                    conference, participant_legs(conference, parts.legs))
        return render_template("console/conferences.html", page="conferences", ref=ref,
                               error=error, conferences=list(found.values()))

    @bp.get("/dead")
    def dead() -> str:
        """Dead letters, newest first, with retry and delete; and the test event form."""
        events = ([dead_view(d) for d in parts.forwarding.dead(DEAD_SHOWN)]
                  if parts.forwarding is not None else [])
        return render_template("console/dead.html", page="dead", events=events,
                               limit=DEAD_SHOWN)
