"""The record_conference use case: fold a signed conference callback into the registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.legs.conferences import Conference, ConferenceEvent
from services.store.conferences import ConferenceStore


@dataclass(frozen=True)
class RecordedConference:
    """What a callback told callrelay, and the conference as the registry now holds it."""

    event: ConferenceEvent
    conference: Conference


def record_conference(conferences: ConferenceStore,
                      params: Mapping[str, str]) -> RecordedConference:
    """Record a conference status callback durably.

    Raises ValidationFailed when the parameters describe no conference event, StoreUnavailable
    when nothing could be recorded. Participants' calls are not looked up here: the webhook
    stays independent of Twilio's API, and /notify looks up the calls it needs.
    """
    event = ConferenceEvent.from_params(params)
    return RecordedConference(event, conferences.apply(event))
