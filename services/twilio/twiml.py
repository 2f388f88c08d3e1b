"""The TwiML callrelay answers a TwiML App's Voice URL request with."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from twilio.twiml.voice_response import Dial, VoiceResponse

from services.legs.conferences import is_conference_name
from services.legs.model import client_identity, is_call_sid
from services.twilio.conference_access import TICKET_PARAM, ConferenceAccess
from services.twilio.dial_policy import (
    CLIENT,
    CONFERENCE,
    NUMBER,
    SIP,
    Allowed,
    DialObserver,
    DialPolicy,
    Refused,
)

# A space-separated string: a Python list renders wrongly in the TwiML builder.
STATUS_EVENTS = "initiated ringing answered completed"
# Connection overrides (not part of the signed URL): ask Twilio to retry a status callback on
# connect/read timeouts and 5xx instead of its default of one retry on connection failure only.
STATUS_CALLBACK_OVERRIDES = "#rc=3&rp=ct,rt,5xx&ct=2000&rt=5000"
# What a conference reports to callrelay: enough to know who is in it.
CONFERENCE_EVENTS = "start end join leave"
REFUSED_SAY = "This call cannot be connected. Goodbye."
log = logging.getLogger("callrelay.dial")


@dataclass(frozen=True)
class DialPlan:
    """What the voice webhook needs to know beyond Twilio's parameters."""

    status_callback_url: str
    caller_id: str | None = None
    inbound_client_identity: str | None = None
    policy: DialPolicy = field(default_factory=DialPolicy)  # by default: no number, no SIP
    observer: DialObserver | None = None
    conference_callback_url: str | None = None
    # Who may join which conference: by default, nobody.
    conferences: ConferenceAccess = field(default_factory=ConferenceAccess)


def voice_response(params: Mapping[str, str], plan: DialPlan) -> str:
    """TwiML for a Voice URL request: dial `To` for SDK callers, ring the inbound client else."""
    response = VoiceResponse()
    callback = {"status_callback": plan.status_callback_url + STATUS_CALLBACK_OVERRIDES,
                "status_callback_event": STATUS_EVENTS, "status_callback_method": "POST"}
    identity = client_identity(params.get("From", ""))
    if identity is not None:
        to = (params.get("To") or "").strip()
        if not to:
            response.say("No destination was given for this call. Goodbye.")
            return str(response)
        allowed = _verdict(identity, to, params, plan)
        if isinstance(allowed, Refused):
            _refused(allowed, params, plan.observer)
            response.say(REFUSED_SAY)
            response.hangup()
            return str(response)
        if allowed.noun == CONFERENCE:
            return join_conference(response, allowed.address, plan)
        if allowed.noun == NUMBER:
            dial = Dial(answer_on_bridge=True, caller_id=plan.caller_id)
            dial.number(allowed.address, **callback)
        else:
            dial = Dial(answer_on_bridge=True)
            if allowed.noun == SIP:
                dial.sip(allowed.address, **callback)
            else:
                assert allowed.noun == CLIENT
                dial.client(allowed.address, **callback)
        response.append(dial)
        return str(response)
    if not plan.inbound_client_identity:
        response.say("This number is not configured to take calls. Goodbye.")
        return str(response)
    dial = Dial(answer_on_bridge=True)
    dial.client(plan.inbound_client_identity, **callback)
    response.append(dial)
    return str(response)


def _verdict(identity: str, to: str, params: Mapping[str, str],
             plan: DialPlan) -> Allowed | Refused:
    """The dial policy's verdict on `to`, and for a conference, whether `identity` may join."""
    allowed = plan.policy.check(to)
    if isinstance(allowed, Refused) or allowed.noun != CONFERENCE:
        return allowed
    # The ticket is a connect parameter of the SDK, in the same request as Twilio's fields.
    reason = plan.conferences.refusal(identity, allowed.address, params.get(TICKET_PARAM))
    return allowed if reason is None else Refused(reason, "conference:****")


def _refused(refused: Refused, params: Mapping[str, str], observer: DialObserver | None) -> None:
    """Log (the destination masked) and count a destination the policy refused."""
    call_sid = params.get("CallSid")
    log.warning("dial refused", extra={
        "reason": refused.reason, "destination": refused.destination,
        **({"call_sid": call_sid} if is_call_sid(call_sid) else {})})
    if observer is not None:
        observer.dial_refused(refused.reason)


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
