"""LOOKUP_BUDGET: the Twilio requests a second (and the burst) that lookups may make."""

from __future__ import annotations

import re

from config.reader import EnvReader
from services.use_cases.lookup_budget import Budget

# An identity lookup is four Calls listings: a smaller burst could never afford one.
MIN_BURST = 4
_BUDGET_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*,\s*([0-9]+)")


def read_lookup_budget(reader: EnvReader) -> Budget:
    """`<requests per second>,<burst>` per process, e.g. `10,40` (the default)."""
    value = reader.optional("LOOKUP_BUDGET")
    if value is None:
        return Budget()
    match = _BUDGET_RE.fullmatch(value)
    rate = float(match.group(1)) if match else 0.0
    burst = int(match.group(2)) if match else 0
    if not match or rate <= 0 or burst < MIN_BURST:
        reader.problem("LOOKUP_BUDGET is malformed: expected <requests per second>,<burst>, "
                       f"such as 10,40 (a rate above 0, a burst of at least {MIN_BURST})")
        return Budget()
    return Budget(rate_per_s=rate, burst=burst)
