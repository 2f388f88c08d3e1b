"""The spec extract: what make_spec.py keeps and corrects, and what the vendored file holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.contract.make_spec import ACCOUNT, CORRECTED_FORMATS, USED, extract

SPEC = Path(__file__).resolve().parent / "twilio-oai" / "callrelay_api_v2010.json"
_METHODS = {"get", "post", "delete", "put", "patch"}


def _page_schema() -> dict[str, Any]:
    links = {name: {"type": "string", "format": "uri"} for name in CORRECTED_FORMATS[0][3]}
    return {"type": "object", "properties": {
        **links, "calls": {"type": "array", "items": {"$ref": "#/components/schemas/call"}}}}


def tiny_spec() -> dict[str, Any]:
    ok = {"responses": {"200": {"description": "OK"}}}
    paths: dict[str, Any] = {path: {"description": path, **{m: ok for m in methods}}
                             for path, methods in USED.items()}
    paths[f"{ACCOUNT}/Calls.json"]["post"] = ok  # used by nobody: dropped
    paths[f"{ACCOUNT}/Calls.json"]["get"] = {"responses": {"200": {"content": {
        "application/json": {"schema": _page_schema()}}}}}
    paths[f"{ACCOUNT}/Queues.json"] = {"get": ok}  # not used: dropped
    return {"openapi": "3.0.1", "info": {"title": "t"}, "paths": paths, "tags": [],
            "components": {"securitySchemes": {"basic": {"type": "http"}}, "schemas": {
                "call": {"properties": {"status": {"$ref": "#/components/schemas/status"}}},
                "status": {"type": "string", "enum": ["queued"]},
                "queue": {"type": "object"}}}}


def test_only_used_operations_and_what_they_reference_are_kept() -> None:
    spec = tiny_spec()
    original = json.dumps(spec)
    cut = extract(spec)
    assert {p: sorted(m for m in item if m in _METHODS) for p, item in cut["paths"].items()} \
        == {p: sorted(m) for p, m in USED.items()}
    assert sorted(cut["components"]["schemas"]) == ["call", "status"]
    assert set(cut) == {"openapi", "info", "paths", "components"}
    links = cut["paths"][f"{ACCOUNT}/Calls.json"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["properties"]
    assert {links[name]["format"] for name in CORRECTED_FORMATS[0][3]} == {"uri-reference"}
    assert json.dumps(spec) == original  # the input is not modified


def test_a_correction_that_no_longer_applies_stops_the_script() -> None:
    spec = tiny_spec()
    page = spec["paths"][f"{ACCOUNT}/Calls.json"]["get"]["responses"]["200"]["content"]
    page["application/json"]["schema"]["properties"]["uri"]["format"] = "uri-reference"
    with pytest.raises(SystemExit, match="no longer format uri"):
        extract(spec)


def test_the_vendored_spec_holds_exactly_the_used_operations() -> None:
    vendored = json.loads(SPEC.read_text())
    assert {p: sorted(m for m in item if m in _METHODS)
            for p, item in vendored["paths"].items()} == {p: sorted(m) for p, m in USED.items()}
