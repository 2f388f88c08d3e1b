"""A conference as Twilio's webhooks tell it: two Voice SDK users dial in, a phone is added.

The SDK users call `To=conference:<name>` through the TwiML App (callrelay answers with
`<Dial><Conference>`); the phone joins through the Participants API, so callrelay never sees
its call, only the conference's callbacks about it. Like Twilio, the script delivers one
callback late (conference-start before the join that started it) and one twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from email.utils import formatdate

from sandbox.calls import Step, _Builder, new_call_sid
from sandbox.tickets import conference_ticket

VOICE_PATH = "/twilio/voice"


def new_conference_sid() -> str:
    """A random, well-formed Conference SID."""
    return "CF" + secrets.token_hex(16)


@dataclass
class ConferenceCall:
    """A conference's calls and the webhooks of its life, split where everyone is in."""

    name: str
    conference_sid: str
    sdk_sids: dict[str, str]  # identity -> the SDK's call SID (the parent leg: it dialled in)
    phone_sid: str
    answer: list[Step] = field(default_factory=list)
    hangup: list[Step] = field(default_factory=list)
    kind: str = "conference"

    @property
    def steps(self) -> list[Step]:
        """Every webhook, in the order this script sends them."""
        return self.answer + self.hangup

    def roles(self) -> list[tuple[str, str]]:
        """What the simulator prints: the conference, each SDK user's call, the phone's call."""
        return [("conference", f"{self.conference_sid} ({self.name})"),
                *(("sdk", f"{sid} ({who})") for who, sid in self.sdk_sids.items()),
                ("phone", self.phone_sid)]

    def notify_body(self) -> dict[str, object]:
        """A /notify body for this conference."""
        return {"conference": self.name, "content": {"hello": self.name}}

    def with_tickets(self, secret: str) -> ConferenceCall:
        """The same conference, each SDK user dialling in with the `ConferenceTicket` their
        app's backend minted with CONFERENCE_TICKET_SECRET (a connect parameter)."""

        def ticketed(step: Step) -> Step:
            if step.path != VOICE_PATH:
                return step
            identity = step.params["From"].removeprefix("client:")
            ticket = conference_ticket(secret, identity, self.name)
            return replace(step, params={**step.params, "ConferenceTicket": ticket})

        return replace(self, answer=[ticketed(s) for s in self.answer],
                       hangup=[ticketed(s) for s in self.hangup])


class _Callbacks:
    """Conference status callbacks of one conference, numbered as Twilio numbers them."""

    def __init__(self, account_sid: str, conference_sid: str, name: str) -> None:
        self.base = {"AccountSid": account_sid, "ConferenceSid": conference_sid,
                     "FriendlyName": name}
        self.sequence = 0

    def event(self, kind: str, note: str, call_sid: str | None = None,
              **extra: str) -> Step:
        self.sequence += 1
        params = {**self.base, "StatusCallbackEvent": kind,
                  "SequenceNumber": str(self.sequence), "Timestamp": formatdate(usegmt=True),
                  **extra}
        if call_sid is not None:
            params.update({"CallSid": call_sid, "Muted": "false", "Hold": "false",
                           "Coaching": "false", "EndConferenceOnExit": "false",
                           "StartConferenceOnEnter": "true"})
        return Step("/twilio/conference", params, note)


def conference_call(account_sid: str, identities: tuple[str, str] = ("alice", "bob"),
                    name: str = "standup", phone: str = "+15005550006") -> ConferenceCall:
    """Two Voice SDK users dial into conference `name`; a phone is added by the REST API."""
    calls, conf = _Builder(account_sid), _Callbacks(account_sid, new_conference_sid(), name)
    first, second = identities
    sdk = {first: new_call_sid(), second: new_call_sid()}
    phone_sid, room = new_call_sid(), f"conference:{name}"
    join_first = conf.event("participant-join", f"{first} joins", sdk[first])
    start = conf.event("conference-start", f"conference {name} starts (delivered early)")
    join_phone = conf.event("participant-join", f"a phone ({phone}) added with the "
                            "Participants API joins", phone_sid)
    answer = [
        calls.voice(sdk[first], f"client:{first}", room, f"{first} dials into {name}"),
        start, join_first,
        calls.voice(sdk[second], f"client:{second}", room, f"{second} dials into {name}"),
        conf.event("participant-join", f"{second} joins", sdk[second]),
        join_phone,
        Step(join_phone.path, join_phone.params, "the phone's join again (Twilio retried)"),
    ]
    hangup = [
        conf.event("participant-leave", "the phone hangs up", phone_sid),
        conf.event("participant-leave", f"{second} leaves", sdk[second]),
        calls.status(sdk[second], "completed", f"client:{second}", room,
                     f"{second}'s call ends", duration=60),
        conf.event("participant-leave", f"{first} leaves", sdk[first]),
        conf.event("conference-end", f"conference {name} ends", CallSidEndingConference=sdk[first],
                   ReasonConferenceEnded="last-participant-left",
                   Reason="Participant left the conference"),
        calls.status(sdk[first], "completed", f"client:{first}", room, f"{first}'s call ends",
                     duration=65),
    ]
    return ConferenceCall(name, conf.base["ConferenceSid"], sdk, phone_sid, answer, hangup)
