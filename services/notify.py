"""The notify use case: validate a request, pick the right leg(s), deliver through Twilio."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from services.errors import (
    AmbiguousTarget,
    CallNotFound,
    ContentTooLarge,
    IdentityNotFound,
    LegNotLive,
    NoSuchLeg,
    ValidationFailed,
)
from services.legs import Leg, is_call_sid
from services.reconcile import Reconciler
from services.store import Store
from services.twilio_gateway import SentMessage, TwilioGateway

MAX_CONTENT_CHARS = 10_000  # Twilio's limit (warning 32703)
MAX_IDEMPOTENCY_KEY_CHARS = 255
LEG_CHOICES = ("sdk", "parent", "child")
_FIELDS = {"call_sid", "identity", "leg", "content", "idempotency_key"}


@dataclass(frozen=True)
class NotifyRequest:
    """A validated /notify request."""

    content: str
    call_sid: str | None = None
    identity: str | None = None
    leg: str = "sdk"
    idempotency_key: str | None = None


def parse_request(body: Any) -> NotifyRequest:
    """Validate a decoded /notify body; raise ValidationFailed or ContentTooLarge."""
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field(s): {', '.join(unknown)}.", fields=unknown)
    call_sid, identity = body.get("call_sid"), body.get("identity")
    if (call_sid is None) == (identity is None):
        raise ValidationFailed("Give exactly one target: call_sid or identity.")
    if call_sid is not None and not is_call_sid(call_sid):
        raise ValidationFailed("call_sid must be CA followed by 32 hex digits.", field="call_sid")
    if identity is not None and (not isinstance(identity, str) or not identity.strip()):
        raise ValidationFailed("identity must be a non-empty string.", field="identity")
    leg = body.get("leg", "sdk")
    if leg not in LEG_CHOICES:
        raise ValidationFailed("leg must be one of sdk, parent, child.", field="leg")
    if "leg" in body and identity is not None:
        raise ValidationFailed("leg applies to call_sid only; an identity names SDK legs.",
                               field="leg")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str)
                            or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS):
        raise ValidationFailed(
            f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters.",
            field="idempotency_key")
    if "content" not in body:
        raise ValidationFailed("content is required: any JSON value.", field="content")
    return NotifyRequest(content=serialize_content(body["content"]), call_sid=call_sid,
                         identity=identity, leg=leg, idempotency_key=key)


def serialize_content(content: Any) -> str:
    """Content as Twilio takes it: compact JSON text; a string must already hold JSON."""
    if isinstance(content, str):
        try:
            json.loads(content)
        except ValueError:
            raise ValidationFailed("content is a string that does not hold JSON; send a JSON "
                                   "value, or a string containing JSON.",
                                   field="content") from None
        text = content
    else:
        text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_CONTENT_CHARS:
        raise ContentTooLarge(
            f"content is {len(text)} characters once serialized; Twilio accepts at most "
            f"{MAX_CONTENT_CHARS}.", limit=MAX_CONTENT_CHARS, length=len(text))
    return text


def _candidates(legs: list[Leg]) -> list[dict[str, Any]]:
    return [leg.to_json() for leg in legs]


def _one_live(legs: list[Leg], what: str) -> Leg:
    """The single live leg among `legs`, or a 409 that says why there is none or several."""
    live = [leg for leg in legs if leg.is_live]
    if len(live) == 1:
        return live[0]
    if len(live) > 1:
        raise AmbiguousTarget(f"Several live {what} legs match; name one by its call_sid.",
                              candidates=_candidates(live))
    if len(legs) == 1:
        raise LegNotLive(f"The {what} leg is {legs[0].status}; Twilio accepts messages only "
                         "while a leg is ringing or in-progress.", leg=legs[0].to_json())
    raise LegNotLive(f"None of the {what} legs is live.", candidates=_candidates(legs))


def resolve_call_target(legs: list[Leg], given: Leg, leg: str) -> Leg:
    """The leg of a call that `leg` names, given the call's legs and the SID the caller gave."""
    if leg == "parent":
        parents = [x for x in legs if x.is_parent]
        if not parents:
            raise NoSuchLeg("callrelay has not seen this call's parent leg.",
                            parent_call_sid=given.root_sid)
        return _one_live(parents, "parent")
    if leg == "child":
        children = [x for x in legs if not x.is_parent]
        if not children:
            raise NoSuchLeg("This call has no child leg (yet).", call_sid=given.root_sid)
        return _one_live(children, "child")
    if given.is_sdk:
        return _one_live([given], "SDK")
    sdk = [x for x in legs if x.is_sdk]
    if not sdk:
        raise NoSuchLeg("No Voice SDK client sits on any leg of this call; pass leg=parent or "
                        "leg=child to send to a leg explicitly.", legs=_candidates(legs))
    return _one_live(sdk, "SDK")


class Notifier:
    """Delivers /notify requests: looks legs up in the store (then Twilio), sends through Twilio."""

    def __init__(self, store: Store, twilio: TwilioGateway, deadline_s: float = 15.0) -> None:
        self.store = store
        self.twilio = twilio
        self.deadline_s = deadline_s
        self.reconciler = Reconciler(store, twilio)

    def targets(self, req: NotifyRequest, deadline: float | None = None) -> list[Leg]:
        """The leg(s) a request is for, or the error that explains why there are none."""
        if req.identity is not None:
            legs = self.store.live_sdk_legs(req.identity)
            if not legs:
                raise IdentityNotFound(f"No live call for the Voice SDK client {req.identity!r}.",
                                       identity=req.identity)
            return legs
        assert req.call_sid is not None
        # One read when the SID is the call's parent (its legs are the call's); a second for
        # a child's SID, to read its parent's call.
        legs = self.store.call_legs(req.call_sid)
        given = next((leg for leg in legs if leg.call_sid == req.call_sid), None)
        if given is None:
            # Unknown here (webhooks not configured, lost, or before an ephemeral disk was
            # wiped): ask Twilio before answering 404.
            given = self.reconciler.call(req.call_sid, deadline)
            if given is None:
                raise CallNotFound("Neither callrelay nor Twilio knows a call with this SID.",
                                   call_sid=req.call_sid)
            legs = self.store.call_legs(given.root_sid)
        elif not given.is_parent:
            legs = self.store.call_legs(given.root_sid)
        try:
            return [resolve_call_target(legs, given, req.leg)]
        except NoSuchLeg:
            # The call is known but the leg asked for is not: its child's status callbacks may
            # not point at callrelay. Twilio lists the children.
            self.reconciler.children(given.root_sid, deadline)
            return [resolve_call_target(self.store.call_legs(given.root_sid), given, req.leg)]

    def notify(self, req: NotifyRequest) -> list[tuple[Leg, SentMessage]]:
        """Send the request's content to each target leg, within one deadline for everything."""
        deadline = time.monotonic() + self.deadline_s
        sent: list[tuple[Leg, SentMessage]] = []
        for leg in self.targets(req, deadline):
            key = req.idempotency_key
            if key is not None and req.identity is not None and len(sent) > 0:
                key = f"{key}:{leg.call_sid}"  # one key per leg: each is a separate message
            sent.append((leg, self.twilio.send_message(leg.call_sid, req.content, key,
                                                       deadline=deadline)))
        return sent
