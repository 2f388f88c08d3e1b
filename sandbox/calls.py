"""Realistic Voice SDK calls as the webhooks Twilio sends for them, for the simulator and tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from email.utils import formatdate


def new_call_sid() -> str:
    """A random, well-formed Call SID."""
    return "CA" + secrets.token_hex(16)


@dataclass(frozen=True)
class Step:
    """One webhook: the route it goes to and its form parameters."""

    path: str
    params: dict[str, str]
    note: str


@dataclass
class Call:
    """A call's legs and the webhooks of its life, split where the call is answered."""

    kind: str
    parent_sid: str
    child_sid: str
    sdk_sid: str
    identity: str
    answer: list[Step] = field(default_factory=list)
    hangup: list[Step] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        """Every webhook, in the order Twilio would send them."""
        return self.answer + self.hangup

    def roles(self) -> list[tuple[str, str]]:
        """What the simulator prints: the parent leg, the child leg, and which is the SDK's."""
        return [("parent", self.parent_sid), ("child", self.child_sid),
                ("sdk", f"{self.sdk_sid} ({self.identity})")]

    def notify_body(self) -> dict[str, object]:
        """A /notify body for the SDK's leg of this call."""
        return {"call_sid": self.sdk_sid, "content": {"hello": self.identity}}


class _Builder:
    def __init__(self, account_sid: str) -> None:
        self.account_sid = account_sid
        self.sequence: dict[str, int] = {}

    def voice(self, sid: str, from_: str, to: str, note: str) -> Step:
        return Step("/twilio/voice", {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": "ringing", "Direction": "inbound", "From": from_, "To": to,
            "Caller": from_, "Called": to,
        }, note)

    def status(self, sid: str, status: str, from_: str, to: str, note: str, *,
               parent: str | None = None, duration: int | None = None,
               path: str = "/twilio/status") -> Step:
        seq = self.sequence.get(sid, 0)
        self.sequence[sid] = seq + 1
        params = {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": status, "From": from_, "To": to,
            "Direction": "outbound-dial" if parent else "inbound",
            "SequenceNumber": str(seq), "Timestamp": formatdate(usegmt=True),
            "CallbackSource": "call-progress-events",
        }
        if parent:
            params["ParentCallSid"] = parent
        if duration is not None:
            params["CallDuration"] = str(duration)
        return Step(path, params, note)


def parent_ends(voice: Step, note: str, duration: int = 0) -> Step:
    """The parent leg's `completed` callback: it goes to the TwiML App's Status Callback URL,
    whatever the TwiML said."""
    params = voice.params
    return _Builder(params["AccountSid"]).status(params["CallSid"], "completed", params["From"],
                                                 params["To"], note, duration=duration)


# What callrelay's TwiML asks Twilio to report about a dialled leg (statusCallbackEvent).
CHILD_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})


def dialled_call(account_sid: str, voice: Step, to: str, *, answered: bool = True,
                 callback_path: str = "/twilio/status",
                 events: frozenset[str] = CHILD_EVENTS) -> Call:
    """The call whose Voice URL request is `voice`, its child leg dialled to `to` (a number, or
    `client:<id>` for a Voice SDK), reported to `callback_path` for the `events` asked for."""
    b, parent, child = _Builder(account_sid), voice.params["CallSid"], new_call_sid()
    caller = voice.params["From"]
    callee = to.removeprefix("client:")
    sdk_caller, sdk_callee = caller.startswith("client:"), to.startswith("client:")
    if sdk_callee:
        # <Client> children have been seen reporting ringing before initiated.
        progress = [("ringing", "ringing", f"{callee}'s device rings"),
                    ("initiated", "initiated", "child leg initiated (late)")]
    else:
        progress = [("initiated", "initiated", f"child leg to {to} created"),
                    ("ringing", "ringing", f"{to} rings")]
    if answered:
        progress.append(("answered", "in-progress", f"{callee} answers"))
    answer = [voice, *(b.status(child, status, caller, to, note, parent=parent,
                                path=callback_path)
                       for event, status, note in progress if event in events)]
    hangup = []
    if "completed" in events:
        hangup.append(b.status(child, "completed" if answered else "no-answer", caller, to,
                               f"{callee} hangs up" if answered else "nobody answers",
                               parent=parent, duration=42 if answered else None,
                               path=callback_path))
    hangup.append(parent_ends(voice, "the caller's leg ends", duration=43 if answered else 0))
    kind = f"{'sdk' if sdk_caller else 'phone'}-to-{'sdk' if sdk_callee else 'phone'}"
    sdk_sid, identity = (parent, caller.removeprefix("client:")) if sdk_caller \
        else (child, callee)
    return Call(kind if answered else f"{kind}-unanswered", parent, child, sdk_sid, identity,
                answer, hangup)


def sdk_calls_phone(account_sid: str, identity: str = "alice", number: str = "+14155552671",
                    answered: bool = True) -> Call:
    """A Voice SDK device calls a phone: the SDK sits on the parent leg. The number is one the
    default dial policy of a US caller ID allows (Twilio's +1500 test numbers are personal
    numbers, which it refuses)."""
    voice = _Builder(account_sid).voice(new_call_sid(), f"client:{identity}", number,
                                        f"{identity} calls {number}: Voice URL request")
    return dialled_call(account_sid, voice, number, answered=answered)


def phone_calls_sdk(account_sid: str, identity: str = "bob", caller: str = "+15005550006",
                    twilio_number: str = "+15005550001") -> Call:
    """A phone calls the Twilio number, which rings an SDK client: the SDK sits on the child."""
    voice = _Builder(account_sid).voice(new_call_sid(), caller, twilio_number,
                                        f"{caller} calls {twilio_number}")
    return dialled_call(account_sid, voice, f"client:{identity}")


def sdk_calls_sdk(account_sid: str, caller: str = "alice", callee: str = "bob") -> Call:
    """One Voice SDK client calls another: an SDK on both legs."""
    voice = _Builder(account_sid).voice(new_call_sid(), f"client:{caller}", f"client:{callee}",
                                        f"{caller} calls {callee}")
    return dialled_call(account_sid, voice, f"client:{callee}")


SCENARIOS = {
    "sdk-to-phone": sdk_calls_phone,
    "phone-to-sdk": phone_calls_sdk,
    "sdk-to-sdk": sdk_calls_sdk,
    "unanswered": lambda account_sid: sdk_calls_phone(account_sid, answered=False),
}
