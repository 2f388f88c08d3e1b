"""The fixed sets every metric label takes its values from; anything else is `other`.

A label value that a request can choose is a new time series, kept by every worker for its
life (and, under gunicorn, in its metrics file): 3,500 made-up HTTP methods were 3,500 series.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from services.errors import RelayError

OTHER = "other"

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUSES = frozenset(str(status.value) for status in HTTPStatus)
# Why an HTTP request to Twilio or a backend has no status.
NO_STATUS = frozenset({"timeout", "connection"})
# What Twilio's UserDefinedMessages and Calls endpoints answer with that an operator acts on.
TWILIO_CODES = frozenset({"20001", "20003", "20404", "20429", "20500", "20503", "21220",
                          "32702", "32703"})
TWILIO_ENDPOINTS = frozenset({
    "GET Calls.json", "GET Calls/{sid}.json", "POST Calls/{sid}/UserDefinedMessages.json",
    "POST Calls/{sid}/UserDefinedMessageSubscriptions.json",
    "DELETE Calls/{sid}/UserDefinedMessageSubscriptions/{sid}.json"})
DIAL_REFUSAL_REASONS = frozenset({
    "invalid_number", "prefix_not_allowed", "premium_rate", "shared_cost", "personal_number",
    "malformed", "sip_domain_not_allowed", "sip_parameter_not_allowed", "unknown_scheme",
    "conference_not_allowed", "conference_ticket_missing", "conference_ticket_invalid",
    "conference_ticket_expired"})
LOOKUP_KINDS = frozenset({"call", "children", "client"})
LOOKUP_OUTCOMES = frozenset({"found", "unknown", "failed", "cached"})
LOOKUP_REFUSALS = frozenset({"rate", "concurrency"})


def _codes(cls: type[RelayError]) -> Iterable[str]:
    yield cls.code
    for sub in cls.__subclasses__():
        yield from _codes(sub)


# The codes of callrelay's JSON errors: its own, and those of the HTTP errors the web layer
# names after their reason phrase (werkzeug's names: its two that differ are added).
ERROR_CODES = frozenset(_codes(RelayError)) | frozenset(
    status.phrase.lower().replace(" ", "_") for status in HTTPStatus) | frozenset(
    {"request_uri_too_long", "request_entity_too_large"})


def bounded(value: object, allowed: frozenset[str]) -> str:
    """`value` as a label: itself when it is in `allowed`, else `other`."""
    text = str(value)
    return text if text in allowed else OTHER
