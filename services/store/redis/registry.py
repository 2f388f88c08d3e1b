"""The Redis registry's birth marker: when this Redis began recording legs for callrelay.

A string key holding the time it was first set. Like every key it has a TTL, long and
refreshed whenever it is read: it goes only with the data (a flush, a restart without
persistence) or after a month unused, and an absent marker reads as a registry that starts now,
which at worst makes callrelay ask Twilio about calls it could have known.
"""

from __future__ import annotations

import redis

MARKER_TTL_S = 30 * 24 * 3600


def registry_age(client: redis.Redis, key: str, now: float) -> float:
    """Seconds since the registry under `key` started; sets the marker to `now` if absent."""
    ttl_ms = MARKER_TTL_S * 1000
    pipe = client.pipeline(transaction=False)
    pipe.set(key, repr(now), nx=True, px=ttl_ms)
    pipe.get(key)
    pipe.pexpire(key, ttl_ms)
    _, started, _ = pipe.execute()
    return max(0.0, now - float(started)) if started is not None else 0.0
