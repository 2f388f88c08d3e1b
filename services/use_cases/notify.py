"""The notify use case: validate a request, pick the right leg(s), deliver through Twilio."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from services import strict_json
from services.errors import (
    AmbiguousTarget,
    CallNotFound,
    ConferenceNotFound,
    ContentTooLarge,
    IdentityNotFound,
    LegNotLive,
    NoSuchLeg,
    ValidationFailed,
)
from services.legs.conferences import conference_ref
from services.legs.model import Leg, is_call_sid
from services.store.conferences import ConferenceStore
from services.store.legs import LegStore
from services.twilio.port import TwilioGateway
from services.use_cases.call_history import CallHistory
from services.use_cases.conference_targets import find_conference, live_sdk_participants
from services.use_cases.lookup_budget import LookupBudget, LookupObserver
from services.use_cases.notify_delivery import MAX_IDEMPOTENCY_KEY_CHARS, Delivery, deliver
from services.use_cases.reconcile import Reconciler

MAX_CONTENT_CHARS = 10_000  # Twilio's limit (warning 32703)
LEG_CHOICES = ("sdk", "parent", "child")
_FIELDS = {"call_sid", "identity", "conference", "leg", "content", "idempotency_key"}


@dataclass(frozen=True)
class NotifyRequest:
    """A validated /notify request."""

    content: str
    call_sid: str | None = None
    identity: str | None = None
    leg: str = "sdk"
    idempotency_key: str | None = None
    conference: str | None = None

    @property
    def fans_out(self) -> bool:
        """True when the target may be several legs (an identity, a conference)."""
        return self.identity is not None or self.conference is not None


def parse_request(body: Any) -> NotifyRequest:
    """Validate a decoded /notify body; raise ValidationFailed or ContentTooLarge."""
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be a JSON object.")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ValidationFailed(f"Unknown field(s): {', '.join(unknown)}.", fields=unknown)
    call_sid, identity, conference = (body.get(k) for k in ("call_sid", "identity",
                                                             "conference"))
    if [call_sid, identity, conference].count(None) != 2:
        raise ValidationFailed("Give exactly one target: call_sid, identity or conference.")
    if call_sid is not None and not is_call_sid(call_sid):
        raise ValidationFailed("call_sid must be CA followed by 32 hex digits.", field="call_sid")
    if identity is not None and (not isinstance(identity, str) or not identity.strip()):
        raise ValidationFailed("identity must be a non-empty string.", field="identity")
    if identity is not None and strict_json.has_lone_surrogate(identity):
        raise ValidationFailed("identity must be Unicode text (it holds a lone surrogate).",
                               field="identity")
    leg = body.get("leg", "sdk")
    if leg not in LEG_CHOICES:
        raise ValidationFailed("leg must be one of sdk, parent, child.", field="leg")
    if conference is not None:
        conference = conference_ref(conference)
    if "leg" in body and call_sid is None:
        raise ValidationFailed("leg applies to call_sid only; an identity or a conference "
                               "names SDK legs.", field="leg")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or strict_json.has_lone_surrogate(key)
                            or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS):
        raise ValidationFailed(
            f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters "
            "of Unicode text.", field="idempotency_key")
    if "content" not in body:
        raise ValidationFailed("content is required: any JSON value.", field="content")
    return NotifyRequest(content=serialize_content(body["content"]), call_sid=call_sid,
                         identity=identity, leg=leg, idempotency_key=key,
                         conference=conference)


def serialize_content(content: Any) -> str:
    """Content as Twilio takes it: compact strict JSON text; a string must already hold it."""
    if isinstance(content, str):
        if strict_json.has_lone_surrogate(content):
            raise _not_strict("it holds a lone surrogate (not Unicode text)")
        try:
            strict_json.loads(content)
        except strict_json.NotJSON:
            raise ValidationFailed("content is a string that does not hold JSON; send a JSON "
                                   "value, or a string containing JSON.",
                                   field="content") from None
        except strict_json.NotStrictJSON as exc:
            raise _not_strict(str(exc)) from None
        text = content
    else:
        try:
            text = strict_json.dumps(content)
        except strict_json.NotStrictJSON as exc:
            raise _not_strict(str(exc)) from None
    if len(text) > MAX_CONTENT_CHARS:
        raise ContentTooLarge(
            f"content is {len(text)} characters once serialized; Twilio accepts at most "
            f"{MAX_CONTENT_CHARS}.", limit=MAX_CONTENT_CHARS, length=len(text))
    return text


def _not_strict(why: str) -> ValidationFailed:
    # The SDK and strict backends parse content per RFC 8259: no NaN or Infinity, numbers a
    # double holds, Unicode text; and callrelay nests at most strict_json.MAX_DEPTH deep.
    return ValidationFailed(f"content must be strict JSON (RFC 8259): {why}.", field="content")


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

    def __init__(self, store: LegStore, twilio: TwilioGateway, deadline_s: float = 15.0,
                 max_call_duration_s: float = 4 * 3600.0, *,
                 conferences: ConferenceStore | None = None,
                 history: CallHistory | None = None,
                 budget: LookupBudget | None = None,
                 observer: LookupObserver | None = None) -> None:
        self.store = store
        self.twilio = twilio
        self.deadline_s = deadline_s
        self.max_call_duration_s = max_call_duration_s
        self.conferences = conferences
        self.history = history
        self.reconciler = Reconciler(store, twilio, budget=budget, observer=observer)

    def targets(self, req: NotifyRequest, deadline: float | None = None) -> list[Leg]:
        """The leg(s) a request is for, or the error that explains why there are none."""
        if req.conference is not None:
            return self.conference_targets(req.conference, deadline)
        if req.identity is not None:
            return self.identity_legs(req.identity, deadline)
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
            if given.is_ended and self.store.get(given.call_sid) is None:
                raise LegNotLive(f"The call leg is {given.status}; it ended more than "
                                 "LEG_RETENTION_S ago.", call_sid=given.call_sid,
                                 status=given.status)
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

    def identity_legs(self, identity: str, deadline: float | None = None) -> list[Leg]:
        """Every live SDK leg of `identity`, asking Twilio when the registry may be missing it."""
        legs = self.store.live_sdk_legs(identity)
        # A registry younger than the longest call (a restart lost it, or it is new) may be
        # missing calls that began before it: Twilio lists them. An older one knows them all.
        if not legs and self.store.registry_age() < self.max_call_duration_s:
            legs = self.reconciler.client(identity, deadline)
        if not legs:
            raise IdentityNotFound(f"No live call for the Voice SDK client {identity!r}.",
                                   identity=identity)
        return legs

    def conference_targets(self, ref: str, deadline: float | None = None) -> list[Leg]:
        """Every live SDK participant's leg of a conference (by name or CF SID); phones get none."""
        if self.conferences is None:
            raise ConferenceNotFound("This callrelay keeps no conference registry.",
                                     conference=ref)
        conference = find_conference(self.conferences, ref)
        return live_sdk_participants(conference, self.store, self.reconciler, deadline)

    def notify(self, req: NotifyRequest) -> Delivery:
        """Send the request's content to each target leg, within one deadline for everything."""
        deadline = time.monotonic() + self.deadline_s
        # A call_sid names one leg: the caller's key goes to Twilio as it is. Any other target
        # may name several legs, and a different set on a retry: each leg gets a key derived
        # from the caller's and its own SID, so a retry pairs every key with the same leg.
        return deliver(self.twilio, self.targets(req, deadline), req.content,
                       req.idempotency_key, per_leg_keys=req.fans_out,
                       deadline=deadline, record=None if self.history is None
                       else partial(self.history.delivered, req.content))
