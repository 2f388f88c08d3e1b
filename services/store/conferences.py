"""The conference-store port: conferences and their participants, beside the leg registry."""

from __future__ import annotations

from typing import Protocol

from services.legs.conferences import Conference, ConferenceEvent


class ConferenceStore(Protocol):
    """A durable record of conferences and who is in them, safe to share between processes."""

    def apply(self, event: ConferenceEvent) -> Conference:
        """Atomically fold a conference callback into its conference and persist the result."""
        ...

    def get(self, conference_sid: str) -> Conference | None:
        """One conference by CF SID, with its participants, while retained."""
        ...

    def find(self, friendly_name: str) -> Conference | None:
        """The conference of that name: the latest not ended, else the one changed last."""
        # Names are reused (a daily "standup" gets a new CF SID each day); SIDs are not.
        ...

    def purge(self) -> int:
        """Forget conferences whose retention has run out; returns how many."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
