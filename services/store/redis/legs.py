"""Redis adapter of the store port: one registry shared by every callrelay instance.

Layout, under `prefix`: a hash per leg (`leg:<sid>`), and three sorted sets of leg SIDs scored
by each leg's expiry, so expired members read as absent and are pruned by score:
`children:<parent sid>`, `identity:<identity>` (legs not ended) and `open` (legs not ended,
the source of `live_calls`); `registry:started_at` (see registry.py); and a tombstone per leg
(`ended:<sid>`, "<status> <ended_at> <expires_at>") that outlives its hash, so a replayed
callback cannot revive a forgotten leg. A leg not ended has its tombstone written ahead, as it
will read once the hash expires without an end (Retention's `tombstone`): nothing runs when a
TTL does. Every key carries a TTL.

On a Redis Cluster every name after the kind is a hash tag (`leg:{<sid>}`, `ended:{<sid>}`,
`children:{<parent sid>}`, `identity:{<identity>}`): a leg's hash and tombstone, which one
transaction writes, share a slot, and the legs spread over the shards by SID. `open` is split
in OPEN_SHARDS keys, a leg's chosen by its SID, lest one shard take every callback. The indexes are
then written beside the transaction rather than in it (see `_apply_once`). A single server
keeps the untagged names it always had.
"""

from __future__ import annotations

import math
import random
import time
import zlib
from collections.abc import Callable
from typing import cast

import redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from services.errors import StoreUnavailable
from services.legs.model import TERMINAL, Leg, LegEvent
from services.legs.rules import (
    Retention,
    call_order,
    expires_at,
    from_tombstone,
    merge,
    tombstone,
)
from services.store.redis import registry
from services.store.redis.database import RedisDatabase
from services.store.redis.leg_hash import leg_fields, read_leg

WATCH_ATTEMPTS = 50
PAGE = 500
OPEN_SHARDS = 16

class RedisStore:
    """Legs in Redis; updates are WATCH/MULTI transactions around the pure `merge`."""

    def __init__(self, db: RedisDatabase, retention: Retention,
                 clock: Callable[[], float] = time.time, *, prefix: str = "callrelay:") -> None:
        self.db = db
        self.retention = retention
        self.clock = clock
        self.prefix = prefix
        # The open-legs index: one key on a single server; on a cluster OPEN_SHARDS keys in
        # as many slots, a leg's by its SID, so that no shard takes every callback's writes.
        self._opens = ([f"{prefix}open:{{{prefix}open-{n}}}" for n in range(OPEN_SHARDS)]
                       if db.topology.cluster else [f"{prefix}open"])
        self._gt: dict[int, bool] = {}

    def _redis(self) -> tuple[redis.Redis, bool]:
        """This process's client, and whether the server knows EXPIRE NX/GT (Redis >= 7)."""
        client = self.db.client()
        gt = self._gt.get(id(client))
        if gt is None:
            gt = self.db.modern()
            self._gt = {id(client): gt}
        return client, gt

    def _open(self, call_sid: str) -> str:
        """The open-legs index a leg belongs in."""
        return self._opens[zlib.crc32(call_sid.encode()) % len(self._opens)]

    def _key(self, kind: str, name: str) -> str:
        # On a cluster, `{name}` puts a leg's hash and tombstone (one transaction) in one slot.
        return f"{self.prefix}{kind}:{self.db.topology.tag(name)}"

    def apply(self, event: LegEvent) -> Leg:
        """Atomically fold an event into its leg and persist the result."""
        with self.db.errors():
            _, gt = self._redis()
            with self.db.writing(self._key("leg", event.call_sid)) as client, \
                    client.pipeline(transaction=True) as pipe:
                for attempt in range(WATCH_ATTEMPTS):
                    try:
                        return self._apply_once(pipe, event, gt)
                    except WatchError:
                        # Another writer changed the leg between our read and EXEC: re-read.
                        if attempt >= 3:
                            time.sleep(random.uniform(0, 0.001 * attempt))
        raise StoreUnavailable("The call registry (Redis) is too busy; retry shortly.")

    def _buried(self, pipe: Pipeline, key: str, call_sid: str, now: float) -> Leg | None:
        """The ended leg a tombstone describes, while it lasts."""
        value = cast(str | None, pipe.get(key))
        if value is None:
            return None
        status, ended_at, until = value.split(" ")
        return from_tombstone(call_sid, status, float(ended_at)) if float(until) > now else None

    def _apply_once(self, pipe: Pipeline, event: LegEvent, gt: bool) -> Leg:
        key, tomb = self._key("leg", event.call_sid), self._key("ended", event.call_sid)
        pipe.watch(key, tomb)
        now = self.clock()
        # decode_responses=True: every reply is str, whatever the generic stubs say.
        stored = cast(dict[str, str], pipe.hgetall(key))
        current = read_leg(stored, now)
        buried = self._buried(pipe, tomb, event.call_sid, now) if current is None else None
        if buried is not None:
            # The two reads are not one snapshot: a writer may have stored the leg, with its
            # tombstone written ahead, in between. Nothing is written here, so EXEC would not
            # notice: look again.
            if read_leg(cast(dict[str, str], pipe.hgetall(key)), now) is not None:
                raise WatchError("the leg was stored meanwhile")
            return buried  # a leg past its retention: nothing is recorded
        leg = merge(current, event, now)
        if leg is current:
            return leg
        expiry = expires_at(leg, self.retention)
        ttl_ms = max(1, math.ceil((expiry - now) * 1000))
        pipe.multi()
        pipe.delete(key)
        pipe.hset(key, mapping=leg_fields(leg, expiry))
        pipe.pexpire(key, ttl_ms)
        if not (current and current.is_ended):
            # Written as the leg ends, in the same transaction as the leg itself; before that,
            # with every change, as the leg's expiry would leave it. Read only once the hash
            # is gone.
            status, ended_at, until = tombstone(leg, self.retention)
            # Milliseconds keep the value within Redis's embedded strings (<= 44 bytes).
            pipe.set(tomb, f"{status} {ended_at:.3f} {until:.3f}",
                     px=max(1, math.ceil((until - now) * 1000)))

        # The indexes: on one server, in the same transaction. On a cluster they live in other
        # slots, so they are written beside it, in an order that keeps them a superset of the
        # truth (readers check every member against its leg): entries added before EXEC (a
        # writer that dies in between leaves an entry for a leg that reads as absent), and
        # removed after it, and only for an ended leg, which no later event revives. A leg
        # whose identity changes (its direction learnt late) stays in the old identity's set
        # until its score runs out: removing it could race a writer that puts it back.
        cluster = self.db.topology.cluster
        before = self.db.client().pipeline(transaction=False) if cluster else pipe
        after = self.db.client().pipeline(transaction=False) if cluster else pipe

        def index(ikey: str, keep: bool) -> None:
            if not keep:
                if not cluster or leg.is_ended:
                    after.zrem(ikey, leg.call_sid)
                return
            # GT on a cluster: a slower writer never pulls an entry's expiry back.
            before.zadd(ikey, {leg.call_sid: expiry}, gt=gt and cluster)
            before.zremrangebyscore(ikey, "-inf", now)
            if gt:
                # GT alone never sets a TTL on a key that has none (it counts as infinite).
                before.pexpire(ikey, ttl_ms, nx=True)
                before.pexpire(ikey, ttl_ms, gt=True)
            else:
                # Without GT: no member can outlive the longest retention from now.
                horizon = max(self.retention.max_call_duration_s, self.retention.leg_retention_s)
                before.pexpire(ikey, math.ceil(horizon * 1000) + 1000)

        # A leg stored before (even one past its retention) may have sat in other sets.
        if stored.get("identity") not in (None, leg.identity):
            index(self._key("identity", stored["identity"]), keep=False)
        if stored.get("parent_sid") not in (None, leg.parent_sid):
            index(self._key("children", stored["parent_sid"]), keep=False)
        if leg.parent_sid:
            index(self._key("children", leg.parent_sid), keep=True)
        if leg.identity:
            index(self._key("identity", leg.identity), keep=not leg.is_ended)
        index(self._open(leg.call_sid), keep=not leg.is_ended)
        if before is not pipe:
            before.execute()
        pipe.execute()
        if after is not pipe:
            after.execute()
        return leg

    def _fetch(self, client: redis.Redis, sids: list[str], now: float) -> list[Leg]:
        """The retained legs among sids, in one round trip."""
        pipe = client.pipeline(transaction=False)
        for sid in sids:
            pipe.hgetall(self._key("leg", sid))
        legs = (read_leg(cast(dict[str, str], fields), now) for fields in pipe.execute())
        return [leg for leg in legs if leg is not None]

    def _calls(self, client: redis.Redis, roots: list[str], now: float) -> list[list[Leg]]:
        """`call_legs` for several roots in two round trips."""
        pipe = client.pipeline(transaction=False)
        for root in roots:
            pipe.zrangebyscore(self._key("children", root), f"({now!r}", "+inf")
        children: list[list[str]] = pipe.execute()
        sids = [sid for root, kids in zip(roots, children, strict=True) for sid in (root, *kids)]
        by_sid = {leg.call_sid: leg for leg in self._fetch(client, sids, now)}
        calls = []
        for root, kids in zip(roots, children, strict=True):
            legs = [by_sid[root]] if root in by_sid else []
            legs += [by_sid[k] for k in kids
                     if k != root and k in by_sid and by_sid[k].parent_sid == root]
            calls.append(sorted(legs, key=call_order))
        return calls

    def get(self, call_sid: str) -> Leg | None:
        """One leg by SID, while retained."""
        with self.db.errors():
            client, _ = self._redis()
            fields = cast(dict[str, str], client.hgetall(self._key("leg", call_sid)))
            return read_leg(fields, self.clock())

    def call_legs(self, root_sid: str) -> list[Leg]:
        """The parent leg (if known) then the children of the call, oldest first."""
        with self.db.errors():
            client, _ = self._redis()
            return self._calls(client, [root_sid], self.clock())[0]

    def live_sdk_legs(self, identity: str) -> list[Leg]:
        """Every live leg on which the Voice SDK client `identity` sits, in call SID order."""
        with self.db.errors():
            client, _ = self._redis()
            now = self.clock()
            sids = cast(list[str], client.zrangebyscore(self._key("identity", identity),
                                                        f"({now!r}", "+inf"))
            legs = self._fetch(client, sids, now)
        return sorted((leg for leg in legs if leg.identity == identity and leg.is_live),
                      key=lambda leg: leg.call_sid)

    def live_calls(self, limit: int = 1000, *, after: str | None = None,
                   identity: str | None = None,
                   statuses: frozenset[str] | None = None) -> list[list[Leg]]:
        """Open calls with a leg that matches the filters, by call SID, after `after`."""

        def fits(leg: Leg) -> bool:
            return ((identity is None or leg.identity == identity)
                    and (leg.status in statuses if statuses is not None else not leg.is_ended))

        if limit <= 0:
            return []
        with self.db.errors():
            client, _ = self._redis()
            now = self.clock()
            # The open legs to start from: an identity's (its index holds only those not
            # ended), unless an ended leg of it may match; else every open leg.
            indexes = ([self._key("identity", identity)] if identity is not None
                       and not (statuses and statuses & TERMINAL) else self._opens)
            roots: set[str] = set()
            for index in indexes:
                start = 0
                while True:
                    sids = cast(list[str], client.zrangebyscore(index, f"({now!r}", "+inf",
                                                                start=start, num=PAGE))
                    roots.update(leg.root_sid for leg in self._fetch(client, sids, now)
                                 if not leg.is_ended)
                    if len(sids) < PAGE:
                        break
                    start += PAGE
            ordered = sorted(root for root in roots if after is None or root > after)
            calls: list[list[Leg]] = []
            while ordered and len(calls) < limit:
                size = min(PAGE, limit - len(calls))  # filters may turn some away: go on
                batch, ordered = ordered[:size], ordered[size:]
                calls += [legs for legs in self._calls(client, batch, now)
                          if any(map(fits, legs)) and not all(leg.is_ended for leg in legs)]
            return calls[:limit]

    def registry_age(self) -> float:
        """Seconds since this Redis began recording legs (0 when its marker was lost)."""
        with self.db.errors():
            client, _ = self._redis()
            return registry.registry_age(client, f"{self.prefix}registry:started_at",
                                         self.clock())

    def purge(self) -> int:
        """Drop expired entries of the open-legs index; TTLs forget the legs themselves."""
        with self.db.errors():
            client, _ = self._redis()
            now = self.clock()
            return sum(int(client.zremrangebyscore(key, "-inf", now)) for key in self._opens)

    def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        with self.db.errors():
            client, _ = self._redis()
            client.ping()

    def close(self) -> None:
        """Disconnect this process's pool; the next call builds a new one."""
        self.db.close()
