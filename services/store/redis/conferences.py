"""Redis adapter of the conference store, beside the legs in the same Redis database.

Layout, under `prefix`: a hash per conference (`conference:<CF sid>`), a hash of its
participants (`conference-participants:<CF sid>`: call SID -> JSON [joined seq, joined at, left
seq, left at]), a sorted set per name (`conference-name:<name>`) of the SIDs that carried
it, scored by each conference's expiry, and a tombstone (`conference-ended:<CF sid>`,
"<ended_at> <expires_at>") that outlives the conference, so a replayed callback cannot revive
it: written with every change, as the conference would read once forgotten (ended, or
expired without an end). Every key carries a TTL. On a Redis Cluster the SID (the name, for
the name's index) is a hash tag, `conference:{<CF sid>}`: a conference's keys share a slot.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from services.errors import StoreUnavailable
from services.legs.conferences import (
    Conference,
    ConferenceEvent,
    Mark,
    Participant,
    expires_at,
    fold,
    from_tombstone,
    participant_order,
    tombstone,
)
from services.legs.rules import Retention
from services.store.redis.database import RedisDatabase

WATCH_ATTEMPTS = 50
OPTIONAL = ("friendly_name", "account_sid", "started_at", "ended_at")


def _mark(sequence: int | None, at: float | None) -> Mark | None:
    return Mark(sequence, at) if at is not None else None


def _participant(call_sid: str, encoded: str) -> Participant:
    joined_seq, joined_at, left_seq, left_at = json.loads(encoded)
    return Participant(call_sid, _mark(joined_seq, joined_at), _mark(left_seq, left_at))


def _encode(p: Participant) -> str:
    joined, left = p.joined, p.left
    return json.dumps([joined and joined.sequence, joined and joined.at,
                       left and left.sequence, left and left.at])


def _conference(fields: Mapping[str, str], participants: Mapping[str, str],
                now: float) -> Conference | None:
    """The conference the hashes hold, or None when it is missing or its retention ran out."""
    if not fields or float(fields["expires_at"]) <= now:
        return None
    started, ended = fields.get("started_at"), fields.get("ended_at")
    members = sorted((_participant(sid, v) for sid, v in participants.items()),
                     key=participant_order)
    return Conference(sid=fields["sid"], friendly_name=fields.get("friendly_name"),
                      account_sid=fields.get("account_sid"),
                      started_at=float(started) if started is not None else None,
                      ended_at=float(ended) if ended is not None else None,
                      updated_at=float(fields["updated_at"]), participants=tuple(members))


class RedisConferenceStore:
    """Conferences in Redis; updates are WATCH/MULTI transactions around the pure `fold`."""

    def __init__(self, db: RedisDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time, *, prefix: str = "callrelay:") -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self.prefix = prefix

    def _keys(self, sid: str) -> tuple[str, str]:
        # On a cluster, `{sid}` puts a conference's three keys (one transaction) in one slot.
        tag = self.db.topology.tag(sid)
        return f"{self.prefix}conference:{tag}", f"{self.prefix}conference-participants:{tag}"

    def _tomb_key(self, sid: str) -> str:
        return f"{self.prefix}conference-ended:{self.db.topology.tag(sid)}"

    def _buried(self, pipe: Pipeline, sid: str, now: float) -> Conference | None:
        """The conference its tombstone describes, while the tombstone lasts."""
        value = cast(str | None, pipe.get(self._tomb_key(sid)))
        if value is None:
            return None
        ended_at, until = value.split(" ")
        return from_tombstone(sid, float(ended_at)) if float(until) > now else None

    def _name_key(self, name: str) -> str:
        return f"{self.prefix}conference-name:{self.db.topology.tag(name)}"

    def apply(self, event: ConferenceEvent) -> Conference:
        """Atomically fold a conference callback into its conference and persist the result."""
        with self.db.errors(), self.db.writing(self._keys(event.conference_sid)[0]) as client, \
                client.pipeline(transaction=True) as pipe:
            for attempt in range(WATCH_ATTEMPTS):
                try:
                    return self._apply_once(pipe, event)
                except WatchError:
                    # Another callback changed the conference meanwhile: read it again.
                    if attempt >= 3:
                        time.sleep(random.uniform(0, 0.001 * attempt))
        raise StoreUnavailable("The conference registry (Redis) is too busy; retry shortly.")

    def _apply_once(self, pipe: Pipeline, event: ConferenceEvent) -> Conference:
        sid = event.conference_sid
        (key, pkey), tomb = self._keys(sid), self._tomb_key(sid)
        pipe.watch(key, pkey, tomb)
        now = self.clock()
        # decode_responses=True: every reply is str, whatever the generic stubs say.
        current = _conference(cast(dict[str, str], pipe.hgetall(key)),
                              cast(dict[str, str], pipe.hgetall(pkey)), now)
        buried = self._buried(pipe, sid, now) if current is None else None
        if buried is not None:
            # Not one snapshot with the reads above: a writer may have stored the conference
            # in between, and nothing is written here for EXEC to notice. Look again.
            if _conference(cast(dict[str, str], pipe.hgetall(key)), {}, now) is not None:
                raise WatchError("the conference was stored meanwhile")
            return buried  # forgotten: nothing is recorded
        conference = fold(current, event, now)
        if conference is current:
            return conference
        expiry = expires_at(conference, self.retention)
        ttl_ms = max(1, math.ceil((expiry - now) * 1000))
        fields: dict[Any, str] = {"sid": conference.sid, "updated_at": repr(conference.updated_at),
                                  "expires_at": repr(expiry)}
        for name in OPTIONAL:
            value = getattr(conference, name)
            if value is not None:
                fields[name] = repr(value) if isinstance(value, float) else value
        old = set(current.participants) if current else set()
        changed: dict[Any, str] = {p.call_sid: _encode(p) for p in conference.participants
                                   if p not in old}
        pipe.multi()
        pipe.delete(key)
        if current is None:  # participants of a forgotten conference of this SID
            pipe.delete(pkey)
        pipe.hset(key, mapping=fields)
        pipe.pexpire(key, ttl_ms)
        ended_at, until = tombstone(conference, self.retention)
        # Milliseconds keep the value within Redis's embedded strings (<= 44 bytes).
        pipe.set(tomb, f"{ended_at:.3f} {until:.3f}", px=max(1, math.ceil((until - now) * 1000)))
        if changed:
            pipe.hset(pkey, mapping=changed)
        pipe.pexpire(pkey, ttl_ms)
        if conference.friendly_name:
            # On a cluster the name's index is in another slot: written before the
            # transaction, so it holds at least every conference stored (find() checks each).
            index = self.db.client().pipeline(transaction=False) \
                if self.db.topology.cluster else pipe
            nkey = self._name_key(conference.friendly_name)
            index.zadd(nkey, {conference.sid: expiry})
            index.zremrangebyscore(nkey, "-inf", now)
            # No member outlives the longest retention from now, so neither may the index.
            horizon = max(self.retention.max_call_duration_s, self.retention.leg_retention_s)
            index.pexpire(nkey, math.ceil(horizon * 1000) + 1000)
            if index is not pipe:
                index.execute()
        pipe.execute()
        return conference

    def _fetch(self, client: redis.Redis, sids: list[str], now: float) -> list[Conference]:
        """The retained conferences among sids, in one round trip."""
        pipe = client.pipeline(transaction=False)
        for sid in sids:
            key, pkey = self._keys(sid)
            pipe.hgetall(key)
            pipe.hgetall(pkey)
        replies = pipe.execute()
        found = (_conference(replies[i], replies[i + 1], now) for i in range(0, len(replies), 2))
        return [c for c in found if c is not None]

    def get(self, conference_sid: str) -> Conference | None:
        """One conference by CF SID, with its participants, while retained."""
        with self.db.errors():
            found = self._fetch(self.db.client(), [conference_sid], self.clock())
        return found[0] if found else None

    def find(self, friendly_name: str) -> Conference | None:
        """The conference of that name: the latest not ended, else the one changed last."""
        with self.db.errors():
            client, now = self.db.client(), self.clock()
            sids = cast(list[str], client.zrangebyscore(self._name_key(friendly_name),
                                                        f"({now!r}", "+inf"))
            found = [c for c in self._fetch(client, sids, now)
                     if c.friendly_name == friendly_name]
        return max(found, key=lambda c: (not c.is_ended, c.updated_at), default=None)

    def purge(self) -> int:
        """Nothing to do: every key carries a TTL, and name indexes are pruned as they change."""
        return 0

    def close(self) -> None:
        """Disconnect this process's pool; the next call builds a new one."""
        self.db.close()
