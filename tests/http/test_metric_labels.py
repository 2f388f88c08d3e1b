"""Every metric label takes its values from a fixed set: no request can add a series."""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from sandbox.calls import new_call_sid, sdk_calls_phone
from tests.support.env import ACCOUNT_SID

STATUSES = {str(s.value) for s in HTTPStatus} | {"other"}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
ENDPOINTS = {"GET Calls.json", "GET Calls/{sid}.json", "POST Calls/{sid}/UserDefinedMessages.json",
             "POST Calls/{sid}/UserDefinedMessageSubscriptions.json",
             "DELETE Calls/{sid}/UserDefinedMessageSubscriptions/{sid}.json", "other"}
TWILIO_CODES = {"", "20001", "20003", "20404", "20429", "20500", "20503", "21220", "32702",
                "32703", "other"}


def samples(client) -> list[tuple[str, dict[str, str], float]]:
    text = client.get("/metrics").get_data(as_text=True)
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def label_values(client, name: str, label: str) -> set[str]:
    return {labels[label] for n, labels, _ in samples(client)
            if n.startswith(name) and label in labels and not n.endswith("_created")}


def test_made_up_http_methods_add_one_series_not_one_each(client):
    client.get("/healthz")
    for n in range(60):
        client.open("/x", method=f"ABCDEFGHIJKL{n}")
        client.open("/notify", method=f"BREW{n}")
    assert label_values(client, "callrelay_http_requests", "method") == {"other", "GET"}
    other = [(labels, value) for name, labels, value in samples(client)
             if name == "callrelay_http_requests_total" and labels["method"] == "other"]
    assert sorted((labels["route"], labels["status"], value) for labels, value in other) == [
        ("unmatched", "404", 60.0), ("unmatched", "405", 60.0)]


def test_twilio_error_codes_outside_the_known_set_are_other(relay, client, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    for n, status in enumerate((400, 404, 409, 410, 418, 451)):
        twilio.fail_next(1, status, code=61000 + n)
        assert relay.notify({"call_sid": call.parent_sid, "content": {}}).status_code == 502
    twilio.fail_next(1, 400, code=21220)
    assert relay.notify({"call_sid": call.parent_sid, "content": {}}).status_code == 502
    notify = {(labels["outcome"], labels["twilio_code"]): value
              for name, labels, value in samples(client) if name == "callrelay_notify_total"}
    assert notify == {("twilio_refused", "other"): 6.0, ("twilio_refused", "21220"): 1.0}


def test_every_label_of_every_metric_is_from_its_fixed_set(relay, client, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    twilio.fail_next(2, 503)
    relay.notify({"call_sid": call.parent_sid, "content": {}})
    twilio.fail_next(1, 429)
    relay.notify({"call_sid": call.parent_sid, "content": {}})
    relay.notify({"call_sid": new_call_sid(), "content": {}})
    relay.notify({"identity": "nobody", "content": {}})
    relay.notify({"identity": "x", "content": {}}, token="y" * 20)
    relay.webhook("/twilio/voice", {"CallSid": new_call_sid(), "From": "client:al",
                                    "To": "+882000000000", "CallStatus": "ringing"})
    for method in ("PROPFIND", "TRACE", "get", "CONNECT"):
        client.open("/calls", method=method)
    client.post("/notify", data="[" * 1100, content_type="application/json")
    routes = {rule.rule for rule in client.application.url_map.iter_rules()} | {"unmatched"}
    allowed = {"route": routes, "method": METHODS, "status": STATUSES, "outcome": None,
               "twilio_code": TWILIO_CODES, "endpoint": ENDPOINTS, "reason": None, "sdk": None}
    allowed["outcome"] = STATUSES | {"timeout", "connection", "sent", *ERROR_CODES}
    allowed["reason"] = STATUSES | {"timeout", "connection", *DIAL_REASONS}
    allowed["sdk"] = {"true", "false"}
    allowed["le"] = None
    allowed["kind"] = {"call", "children", "client"}
    allowed["outcome"] |= {"found", "unknown", "failed", "cached"}
    allowed["reason"] |= {"rate", "concurrency", "http_3xx", "http_4xx", "http_5xx", "other"}
    allowed["operation"] = {"notify", "sdk_message", "forwarding", "call_ended"}
    allowed["source"] = {"request", "forwarding", "other"}
    for name, labels, _ in samples(client):
        for label, value in labels.items():
            assert label in allowed, (name, label)
            if allowed[label] is not None:
                assert value in allowed[label], (name, label, value)


ERROR_CODES = {"invalid_json", "validation_failed", "content_too_large", "unauthorized",
               "call_not_found", "identity_not_found", "conference_not_found", "leg_not_live",
               "ambiguous_target", "no_such_leg", "twilio_refused", "twilio_unavailable",
               "twilio_timeout", "store_unavailable", "lookup_budget_exhausted",
               "method_not_allowed", "bad_request", "request_entity_too_large",
               "unsupported_media_type", "internal_error", "other"}
DIAL_REASONS = {"invalid_number", "prefix_not_allowed", "premium_rate", "shared_cost",
                "personal_number", "malformed", "sip_domain_not_allowed",
                "sip_parameter_not_allowed", "unknown_scheme", "conference_not_allowed",
                "conference_ticket_missing", "conference_ticket_invalid",
                "conference_ticket_expired", "other"}


def test_every_dial_refusal_reason_in_the_code_has_its_own_label_value():
    from services.observability.labels import DIAL_REFUSAL_REASONS

    root = Path(__file__).resolve().parents[2] / "services" / "twilio"
    # Refused("…"), the number types refused, and conference_access's named refusals.
    pattern = (r'(?:Refused\(\s*|PhoneNumberType\.[A-Z_]+:\s*|'
               r'^(?:NOT_ALLOWED|TICKET_[A-Z_]+) = )"([a-z_]+)"')
    reasons = {m for path in root.glob("*.py")
               for m in re.findall(pattern, path.read_text(), re.MULTILINE)}
    assert {"premium_rate", "malformed", "conference_ticket_expired"} <= reasons
    assert reasons and reasons <= DIAL_REFUSAL_REASONS, reasons - DIAL_REFUSAL_REASONS
