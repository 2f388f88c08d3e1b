"""Strict JSON (RFC 8259): what callrelay takes from backends and hands to Twilio and backends.

Python's json module reads and writes `NaN` and `Infinity`, reads `1e999` as infinity, and keeps
lone surrogates (`"\\ud800"`) in strings. A strict parser rejects the first two, a backend that
reads numbers as doubles rejects the third, and UTF-8 cannot encode the last (SQLite, Redis and
the twilio SDK fail on them). So callrelay checks every value it passes on, with one walk that
does not recurse (a deeply nested value cannot exhaust the stack here).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

# Deeper values are refused: no message needs more, and Python's parser and encoder recurse.
MAX_DEPTH = 64
_LARGEST = sys.float_info.max
_INF = float("inf")
_SURROGATE = re.compile("[\ud800-\udfff]")


class NotStrictJSON(ValueError):
    """The text or value is not strict JSON; the message says why, in a few words."""


class NotJSON(NotStrictJSON):
    """The text is not JSON at all (not merely JSON that a strict parser refuses)."""


def problem(value: Any, max_depth: int = MAX_DEPTH) -> str | None:
    """Why `value` (as json.loads returns it) is not strict JSON, or None when it is."""
    # Level by level, with exact type checks: json.loads makes nothing but these types, and
    # this runs on every /notify's content.
    level, depth = [value], 0
    while level:
        deeper: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if not item.isascii() and _SURROGATE.search(item):
                    return "a string holds a lone surrogate (not Unicode text)"
            elif kind is dict or kind is list:
                if depth >= max_depth:
                    return f"it is nested deeper than {max_depth} levels"
                if kind is dict:
                    deeper.extend(item)  # the keys, strings to check like the values
                    deeper.extend(item.values())
                else:
                    deeper.extend(item)
            elif kind is float:
                if item != item or item in (_INF, -_INF):
                    return "a number is NaN, Infinity or beyond a double's range (like 1e999)"
            elif kind is int:
                if abs(item) > _LARGEST:
                    return "a number is beyond a double's range"
            elif not (kind is bool or item is None):
                return f"it holds a {kind.__name__}, which JSON has no form for"
        level, depth = deeper, depth + 1
    return None


def _no_constants(name: str) -> Any:
    raise NotStrictJSON(f"{name} is not a JSON number")


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The value of strict JSON text; NotStrictJSON (a ValueError) when it is anything else."""
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except NotStrictJSON:
        raise
    except RecursionError:
        raise NotStrictJSON(f"it is nested deeper than {max_depth} levels") from None
    except ValueError:  # JSONDecodeError, invalid UTF-8, an integer of over 4,300 digits
        raise NotJSON("it is not JSON") from None
    why = problem(value, max_depth)
    if why is not None:
        raise NotStrictJSON(why)
    return value


def dumps(value: Any, max_depth: int = MAX_DEPTH) -> str:
    """Compact JSON text of a value that `problem` passed (NotStrictJSON otherwise)."""
    why = problem(value, max_depth)
    if why is not None:
        raise NotStrictJSON(why)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def clean_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, so that UTF-8 can encode it."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def has_lone_surrogate(text: str) -> bool:
    """True when UTF-8 cannot encode `text` (it holds a lone surrogate)."""
    return not text.isascii() and _SURROGATE.search(text) is not None
