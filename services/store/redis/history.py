"""Redis adapter of the message history, beside the legs in the same Redis database.

Layout, under `prefix`, per call: a hash (`history:{<call sid>}`) of entry id -> the entry's
JSON, `<entry id>#state` -> its JSON [status, attempts, error] (the part that changes), and
`#until` -> when the history may go (by the adapter's clock, which tests move); and a sorted
set of entry ids scored by time (`history-order:{<call sid>}`), the order the bound trims by.
Both keys carry a TTL to `#until`; the braces keep them in one Cluster slot.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import redis
from redis.commands.core import Script

from services.legs.rules import Retention
from services.store.history import MAX_ENTRIES, HistoryEntry, history_expires_at
from services.store.redis.database import RedisDatabase

STATE, UNTIL = "#state", "#until"  # entry ids (KX…, failed-…) hold no '#'
ADD = """
-- KEYS: hash, order. ARGV: id, entry, state, at, now, until, ttl_ms, max entries
local held = redis.call('HGET', KEYS[1], '#until')
if held and tonumber(held) <= tonumber(ARGV[5]) then
  redis.call('DEL', KEYS[1], KEYS[2])  -- past its time, not expired yet: start afresh
end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1] .. '#state', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
  local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[8])
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, extra - 1)) do
      redis.call('HDEL', KEYS[1], old, old .. '#state')
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
  end
end
redis.call('HSET', KEYS[1], '#until', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[7])
"""
UPDATE = """
-- KEYS: hash. ARGV: id, state, now. HSET keeps the key's TTL.
local held = redis.call('HGET', KEYS[1], '#until')
if not held or tonumber(held) <= tonumber(ARGV[3]) then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1] .. '#state', ARGV[2])
return 1
"""
ENDED = """
-- KEYS: hash, order. ARGV: until, ttl_ms, now. A history that is gone stays gone.
local current = redis.call('HGET', KEYS[1], '#until')
if not current or tonumber(current) <= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], '#until', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""
# HistoryEntry fields kept in the entry's JSON; the state holds the others.
FIXED = ("call_sid", "id", "direction", "leg_sid", "at", "size", "sid", "leg", "identity",
         "idempotency_key", "content")


def _state(status: str, attempts: int | None, error: Mapping[str, Any] | None) -> str:
    return json.dumps([status, attempts, dict(error) if error else None],
                      separators=(",", ":"), ensure_ascii=False)


def _ttl_ms(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) * 1000))


class RedisMessageHistory:
    """Message histories in Redis; each change is one Lua script, atomic on the server."""

    def __init__(self, db: RedisDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time, *, prefix: str = "callrelay:") -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self.prefix = prefix
        self._script: Script | None = None

    def _keys(self, call_sid: str) -> list[str]:
        return [f"{self.prefix}history:{{{call_sid}}}",
                f"{self.prefix}history-order:{{{call_sid}}}"]

    def add(self, entries: Sequence[HistoryEntry]) -> None:
        """Record entries in one round trip; each call keeps its newest MAX_ENTRIES."""
        if not entries:
            return
        now = self.clock()
        until = history_expires_at(now, self.retention)
        calls: list[tuple[list[str], list[str | int]]] = [(self._keys(e.call_sid), [
            e.id, json.dumps({name: getattr(e, name) for name in FIXED}, separators=(",", ":"),
                             ensure_ascii=False),
            _state(e.status, e.attempts, e.error), repr(e.at), repr(now), repr(until),
            _ttl_ms(until, now), MAX_ENTRIES]) for e in entries]
        with self.db.errors():
            client = self.db.client()
            if len(calls) == 1 or self.db.topology.cluster:
                # The usual case: EVALSHA, the script's text sent only once. A cluster's
                # pipelines take no scripts: one call after another (a /notify fan-out's few).
                for keys, args in calls:
                    self._add(client)(keys, args)
                return
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.eval(ADD, 2, *keys, *args)
            pipe.execute()

    def _add(self, client: redis.Redis) -> Script:
        """The ADD script registered with this process's client."""
        if self._script is None or self._script.registered_client is not client:
            self._script = client.register_script(ADD)
        return self._script

    def update(self, call_sid: str, entry_id: str, status: str, *, attempts: int | None = None,
               error: Mapping[str, Any] | None = None) -> bool:
        """Set an entry's status, attempts and error; False when the call holds no such entry."""
        with self.db.errors():
            return bool(self.db.client().eval(UPDATE, 1, self._keys(call_sid)[0], entry_id,
                                              _state(status, attempts, error),
                                              repr(self.clock())))

    def call_ended(self, call_sid: str, ended_at: float) -> None:
        """Keep the call's history LEG_RETENTION_S from `ended_at`."""
        until = ended_at + self.retention.leg_retention_s
        now = self.clock()
        with self.db.errors():
            self.db.client().eval(ENDED, 2, *self._keys(call_sid), repr(until),
                                  _ttl_ms(until, now), repr(now))

    def entries(self, call_sid: str) -> list[HistoryEntry]:
        """The call's history, oldest first."""
        with self.db.errors():
            fields = cast(dict[str, str], self.db.client().hgetall(self._keys(call_sid)[0]))
        until = fields.pop(UNTIL, None)
        if until is None or float(until) <= self.clock():
            return []
        found = []
        for name, value in fields.items():
            if name.endswith(STATE):
                continue
            state = fields.get(name + STATE)
            status, attempts, error = json.loads(state) if state else ("", None, None)
            found.append(HistoryEntry(**json.loads(value), status=status, attempts=attempts,
                                      error=error))
        return sorted(found, key=lambda e: (e.at, e.id))

    def purge(self) -> int:
        """Nothing to do: every key carries its history's TTL."""
        return 0

    def close(self) -> None:
        """Disconnect this process's pool; the next call builds a new one."""
        self.db.close()
