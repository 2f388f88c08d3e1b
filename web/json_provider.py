"""Flask's JSON for callrelay: reading a request never raises past a ValueError, and every
answer is strict JSON (RFC 8259)."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider


class StrictJSONProvider(DefaultJSONProvider):
    """DefaultJSONProvider that turns a too-deep body into a ValueError and never writes NaN."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse a body; a body nested deeper than the parser's stack is a ValueError too.

        Request.get_json(silent=True) then answers None, as for any body that is not JSON,
        instead of letting a RecursionError through to every hook that reads the body.
        """
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("The body is nested too deeply to be read.") from None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialize an answer; NaN or infinity in one is a bug, never an answer."""
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)
