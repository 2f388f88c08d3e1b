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
               parent: str | None = None, duration: int | None = None) -> Step:
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
        return Step("/twilio/status", params, note)


def sdk_calls_phone(account_sid: str, identity: str = "alice", number: str = "+14155552671",
                    answered: bool = True) -> Call:
    """A Voice SDK device calls a phone: the SDK sits on the parent leg. The number is one the
    default dial policy of a US caller ID allows (Twilio's +1500 test numbers are personal
    numbers, which it refuses)."""
    b, parent, child = _Builder(account_sid), new_call_sid(), new_call_sid()
    caller = f"client:{identity}"
    answer = [
        b.voice(parent, caller, number, f"{identity} calls {number}: Voice URL request"),
        b.status(child, "initiated", caller, number, "child leg to the phone created",
                 parent=parent),
        b.status(child, "ringing", caller, number, "the phone rings", parent=parent),
    ]
    if not answered:
        hangup = [
            b.status(child, "no-answer", caller, number, "nobody answers", parent=parent),
            b.status(parent, "completed", caller, number, "the SDK leg ends", duration=0),
        ]
        return Call("sdk-to-phone-unanswered", parent, child, parent, identity, answer, hangup)
    answer.append(b.status(child, "in-progress", caller, number, "the phone answers",
                           parent=parent))
    hangup = [
        b.status(child, "completed", caller, number, "the phone hangs up", parent=parent,
                 duration=42),
        b.status(parent, "completed", caller, number, "the SDK leg ends", duration=43),
    ]
    return Call("sdk-to-phone", parent, child, parent, identity, answer, hangup)


def phone_calls_sdk(account_sid: str, identity: str = "bob", caller: str = "+15005550006",
                    twilio_number: str = "+15005550001") -> Call:
    """A phone calls the Twilio number, which rings an SDK client: the SDK sits on the child."""
    b, parent, child = _Builder(account_sid), new_call_sid(), new_call_sid()
    callee = f"client:{identity}"
    answer = [
        b.voice(parent, caller, twilio_number, f"{caller} calls {twilio_number}"),
        # <Client> children have been seen reporting ringing before initiated.
        b.status(child, "ringing", caller, callee, f"{identity}'s device rings", parent=parent),
        b.status(child, "initiated", caller, callee, "child leg initiated (late)",
                 parent=parent),
        b.status(child, "in-progress", caller, callee, f"{identity} answers", parent=parent),
    ]
    hangup = [
        b.status(child, "completed", caller, callee, f"{identity} hangs up", parent=parent,
                 duration=30),
        b.status(parent, "completed", caller, twilio_number, "the caller's leg ends",
                 duration=31),
    ]
    return Call("phone-to-sdk", parent, child, child, identity, answer, hangup)


def sdk_calls_sdk(account_sid: str, caller: str = "alice", callee: str = "bob") -> Call:
    """One Voice SDK client calls another: an SDK on both legs."""
    b, parent, child = _Builder(account_sid), new_call_sid(), new_call_sid()
    src, dst = f"client:{caller}", f"client:{callee}"
    answer = [
        b.voice(parent, src, dst, f"{caller} calls {callee}"),
        b.status(child, "initiated", src, dst, "child leg created", parent=parent),
        b.status(child, "ringing", src, dst, f"{callee}'s device rings", parent=parent),
        b.status(child, "in-progress", src, dst, f"{callee} answers", parent=parent),
    ]
    hangup = [
        b.status(child, "completed", src, dst, f"{callee} hangs up", parent=parent, duration=12),
        b.status(parent, "completed", src, dst, f"{caller}'s leg ends", duration=13),
    ]
    return Call("sdk-to-sdk", parent, child, parent, caller, answer, hangup)


SCENARIOS = {
    "sdk-to-phone": sdk_calls_phone,
    "phone-to-sdk": phone_calls_sdk,
    "sdk-to-sdk": sdk_calls_sdk,
    "unanswered": lambda account_sid: sdk_calls_phone(account_sid, answered=False),
}
