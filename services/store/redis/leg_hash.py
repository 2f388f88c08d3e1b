"""How a leg is laid out in its Redis hash: the fields written, and the leg read back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.legs.model import Leg

# Hash field -> Leg attribute, for the optional attributes stored only when known.
OPTIONAL = {"parent_sid": "parent_sid", "account_sid": "account_sid", "from": "from_",
            "to": "to", "direction": "direction", "identity": "identity",
            "ended_at": "ended_at"}


def read_leg(fields: Mapping[str, str], now: float) -> Leg | None:
    """The leg a hash holds, or None when it is missing or its retention ran out."""
    if not fields or float(fields["expires_at"]) <= now:
        return None
    ended = fields.get("ended_at")
    return Leg(call_sid=fields["call_sid"], status=fields["status"],
               parent_sid=fields.get("parent_sid"), account_sid=fields.get("account_sid"),
               from_=fields.get("from"), to=fields.get("to"),
               direction=fields.get("direction"), identity=fields.get("identity"),
               updated_at=float(fields["updated_at"]),
               ended_at=float(ended) if ended is not None else None)


def leg_fields(leg: Leg, expiry: float) -> dict[Any, str]:
    """The hash's fields for `leg`, kept until `expiry`."""
    fields: dict[Any, str] = {"call_sid": leg.call_sid, "status": leg.status,
                              "updated_at": repr(leg.updated_at), "expires_at": repr(expiry)}
    for field, attr in OPTIONAL.items():
        value = getattr(leg, attr)
        if value is not None:
            fields[field] = repr(value) if isinstance(value, float) else value
    return fields
