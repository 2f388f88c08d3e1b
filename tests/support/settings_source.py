"""The variables callrelay's settings read, found by scanning the sources of config/."""

from __future__ import annotations

import re
from functools import cache

from sandbox.devtools import ROOT

_READER_CALL = re.compile(r"\breader\.\w+\(\s*\"([A-Z][A-Z0-9_]*)\"")


@cache
def settings_variables() -> frozenset[str]:
    """Every variable Settings.from_env reads, found by scanning config/*.py's reader calls."""
    names = frozenset(name for path in sorted((ROOT / "config").glob("*.py"))
                      for name in _READER_CALL.findall(path.read_text()))
    assert {"TWILIO_ACCOUNT_SID", "RELAY_API_TOKENS", "STORE_URL", "REDIS_URL"} <= names
    return names
