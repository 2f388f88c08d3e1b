"""Cut Twilio's OpenAPI description down to the operations callrelay calls.

Usage: python tests/contract/make_spec.py FULL_SPEC.json > tests/contract/twilio-oai/callrelay_api_v2010.json
Keeps only the paths and methods in USED, the components they reference (transitively), the
security schemes and the top-level metadata. One correction is made (CORRECTED_FORMATS): the list
page links are relative (Twilio's own examples: "/2010-04-01/Accounts/…"), so their format is
"uri-reference", not "uri"; as published, Prism --errors fails every list answer on them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

ACCOUNT = "/2010-04-01/Accounts/{AccountSid}"
# Every Twilio request callrelay makes (services/twilio/rest.py), path -> methods.
USED: dict[str, tuple[str, ...]] = {
    f"{ACCOUNT}/Calls.json": ("get",),
    f"{ACCOUNT}/Calls/{{Sid}}.json": ("get",),
    f"{ACCOUNT}/Calls/{{CallSid}}/UserDefinedMessages.json": ("post",),
    f"{ACCOUNT}/Calls/{{CallSid}}/UserDefinedMessageSubscriptions.json": ("post",),
}
# (path, method, status, properties of the response body) whose "uri" format is corrected.
CORRECTED_FORMATS = [
    (f"{ACCOUNT}/Calls.json", "get", "200",
     ("first_page_uri", "next_page_uri", "previous_page_uri", "uri")),
]
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PREFIX = "#/components/"


def _refs(node: Any) -> set[str]:
    """Every local `$ref` under `node`."""
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _correct_formats(paths: dict[str, Any]) -> None:
    for path, method, status, names in CORRECTED_FORMATS:
        body = paths[path][method]["responses"][status]["content"]["application/json"]
        properties = body["schema"]["properties"]
        for name in names:
            if properties[name].get("format") != "uri":
                raise SystemExit(f"{path} {name} is no longer format uri: drop the correction")
            properties[name] = {**properties[name], "format": "uri-reference"}


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of `spec` that USED needs, still a valid OpenAPI document."""
    paths: dict[str, Any] = {}
    for path, methods in USED.items():
        item = spec["paths"][path]
        missing = [m for m in methods if m not in item]
        if missing:
            raise SystemExit(f"{path} has no {', '.join(missing)} in this spec")
        paths[path] = {key: value for key, value in item.items()
                       if key not in _METHODS or key in methods}
    paths = json.loads(json.dumps(paths))  # corrected on a copy, never in `spec`
    _correct_formats(paths)
    components: dict[str, dict[str, Any]] = {
        "securitySchemes": spec["components"]["securitySchemes"]}
    pending, seen = _refs(paths), set()
    while pending:
        ref = pending.pop()
        seen.add(ref)
        if not ref.startswith(_PREFIX):
            raise SystemExit(f"cannot follow the non-local reference {ref}")
        kind, name = ref[len(_PREFIX):].split("/", 1)
        target = spec["components"][kind][name]
        components.setdefault(kind, {})[name] = target
        pending |= _refs(target) - seen
    for kind in components:
        components[kind] = dict(sorted(components[kind].items()))
    head: dict[str, Any] = {key: spec[key] for key in ("openapi", "info", "servers", "security")
                            if key in spec}
    return {**head, "paths": paths, "components": components}


def main(argv: list[str]) -> int:
    """Print the extract of the spec file named in argv[1]."""
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    json.dump(extract(spec), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
