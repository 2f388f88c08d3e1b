"""The record_conference use case: fold a signed conference callback into the registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.legs.conferences import Conference, ConferenceEvent
from services.legs.rules import Retention, is_stale
from services.store.conferences import ConferenceStore

log = logging.getLogger("callrelay.webhooks")


@dataclass(frozen=True)
class RecordedConference:
    """What a callback told callrelay, and the conference as the registry now holds it.

    `conference` is None when the callback was refused as a replay (its Timestamp is stale).
    """

    event: ConferenceEvent
    conference: Conference | None


def record_conference(conferences: ConferenceStore, params: Mapping[str, str],
                      retention: Retention, now: float | None = None) -> RecordedConference:
    """Record a conference status callback durably.

    A callback stamped longer ago than `retention.stale_after_s` records nothing (acknowledged
    all the same, so Twilio does not retry it), like a leg's; a forgotten conference is not
    revived (the store's tombstones). Raises ValidationFailed when the parameters describe no
    conference event, StoreUnavailable when nothing could be recorded. Participants' calls are
    not looked up here: the webhook stays independent of Twilio's API, and /notify looks up
    the calls it needs.
    """
    event = ConferenceEvent.from_params(params)
    now = time.time() if now is None else now
    if is_stale(event, now, retention):
        log.warning("stale conference callback ignored: Twilio stamped it too long ago", extra={
            "conference_sid": event.conference_sid, "reported": event.kind,
            "age_s": round(now - (event.timestamp or now))})
        return RecordedConference(event, None)
    return RecordedConference(event, conferences.apply(event))
