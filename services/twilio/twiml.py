"""The TwiML callrelay answers a TwiML App's Voice URL request with."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from twilio.twiml.voice_response import Dial, VoiceResponse

from services.legs.conferences import CONFERENCE_PREFIX, is_conference_name
from services.legs.model import client_identity

PHONE_RE = re.compile(r"^\+?[0-9][0-9\-\s().]{1,30}$")
# A space-separated string: a Python list renders wrongly in the TwiML builder.
STATUS_EVENTS = "initiated ringing answered completed"
# Connection overrides (not part of the signed URL): ask Twilio to retry a status callback on
# connect/read timeouts and 5xx instead of its default of one retry on connection failure only.
STATUS_CALLBACK_OVERRIDES = "#rc=3&rp=ct,rt,5xx&ct=2000&rt=5000"
# What a conference reports to callrelay: enough to know who is in it.
CONFERENCE_EVENTS = "start end join leave"


@dataclass(frozen=True)
class DialPlan:
    """What the voice webhook needs to know beyond Twilio's parameters."""

    status_callback_url: str
    caller_id: str | None = None
    inbound_client_identity: str | None = None
    conference_callback_url: str | None = None


def voice_response(params: Mapping[str, str], plan: DialPlan) -> str:
    """TwiML for a Voice URL request: dial `To` for SDK callers, ring the inbound client else."""
    response = VoiceResponse()
    callback = {"status_callback": plan.status_callback_url + STATUS_CALLBACK_OVERRIDES,
                "status_callback_event": STATUS_EVENTS, "status_callback_method": "POST"}
    caller = params.get("From", "")
    if client_identity(caller) is not None:
        to = (params.get("To") or "").strip()
        if not to:
            response.say("No destination was given for this call. Goodbye.")
            return str(response)
        if to.startswith(CONFERENCE_PREFIX):
            return join_conference(response, to.removeprefix(CONFERENCE_PREFIX), plan)
        if PHONE_RE.match(to):
            dial = Dial(answer_on_bridge=True, caller_id=plan.caller_id)
            dial.number(re.sub(r"[^\d+]", "", to), **callback)
            response.append(dial)
            return str(response)
        dial = Dial(answer_on_bridge=True)
        if to.startswith("sip:"):
            dial.sip(to, **callback)
        else:
            dial.client(client_identity(to) or to, **callback)
        response.append(dial)
        return str(response)
    if not plan.inbound_client_identity:
        response.say("This number is not configured to take calls. Goodbye.")
        return str(response)
    dial = Dial(answer_on_bridge=True)
    dial.client(plan.inbound_client_identity, **callback)
    response.append(dial)
    return str(response)


def join_conference(response: VoiceResponse, name: str, plan: DialPlan) -> str:
    """`<Dial><Conference>` for `To=conference:NAME`, its callbacks pointed at callrelay."""
    if not is_conference_name(name):
        response.say("That conference name is not valid. Goodbye.")
        return str(response)
    callback: dict[str, str] = {}
    if plan.conference_callback_url:
        # Only the first participant's statusCallback is kept for the conference: every
        # participant callrelay dials in carries it, so whoever comes first sets it.
        callback = {"status_callback": plan.conference_callback_url + STATUS_CALLBACK_OVERRIDES,
                    "status_callback_event": CONFERENCE_EVENTS,
                    "status_callback_method": "POST"}
    dial = Dial()
    dial.conference(name, **callback)
    response.append(dial)
    return str(response)
