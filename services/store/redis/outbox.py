"""Redis adapter of the outbox port, for several instances; each operation is one Lua script.

Layout under `prefix`: a hash per event (`ob:ev:<id>`), a list of event ids per stream
(`ob:q:<stream>`, oldest first; an event set aside has one of its own, `ob:q:<stream>~<id>`), a
sorted set of streams scored by when their head event may next be leased (`ob:due`: now when
new, the lease's end while delivered, the backoff's end after a failure), a sorted set of dead
ids (`ob:dead`), the ids already queued (`ob:seen:<id>`) and the named leases (`once:<name>`,
named so before they were called leases; renaming the keys would drop the leases held during a
rolling deploy). Every key has a TTL. The scripts build key names from the prefix, and one
lease walks many streams: on a Redis Cluster every key of the outbox therefore carries one hash
tag (`<prefix>{outbox}:ob:…`) and the outbox lives on one shard. It carries only the messages
Voice SDK clients send (with FORWARD_URL), a few operations each, far fewer than the legs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, cast

from services.store.outbox import DEAD_S, SEEN_S, Backlog, DeadEvent, OutboxEvent
from services.store.redis.database import RedisDatabase
from services.store.redis.outbox_scripts import (
    ACK,
    BACKLOG,
    BURY,
    DELETE_DEAD,
    ENQUEUE,
    LEASE,
    RETRY,
    REVIVE,
    SET_ASIDE,
)

TTL_MS = math.ceil(DEAD_S * 1000)
REVIVE_BATCH = 200
# Bounds the work of counting the backlog (one script, which holds the server): past this
# many calls with pending events, the count is a lower bound.
MAX_STREAMS_COUNTED = 1000


class RedisOutbox:
    """Outbox and named leases in Redis, shared by every callrelay instance."""

    def __init__(self, db: RedisDatabase, clock: Callable[[], float] = time.time, *,
                 prefix: str = "callrelay:") -> None:
        self.db = db
        self.clock = clock
        # One slot for the whole outbox on a cluster; a single server keeps its key names.
        self.prefix = f"{prefix}{{outbox}}:" if db.topology.cluster else prefix
        self._due, self._dead = f"{self.prefix}ob:due", f"{self.prefix}ob:dead"

    def _run(self, script: str, keys: list[str], *args: Any) -> Any:
        with self.db.errors():
            return self.db.client().eval(script, len(keys), *keys, self.prefix, *args)

    def enqueue(self, event: OutboxEvent) -> bool:
        """Queue `event` unless its id is already known; True when it was queued now (and,
        with REDIS_MIN_REPLICAS, held by enough replicas: Twilio is answered after this)."""
        now = self.clock()
        p = self.prefix
        keys = [f"{p}ob:ev:{event.id}", f"{p}ob:seen:{event.id}", f"{p}ob:q:{event.stream}",
                self._due]
        with self.db.errors(), self.db.writing(self._due) as client:
            return bool(client.eval(ENQUEUE, len(keys), *keys, self.prefix, event.id,
                                    event.stream, event.body, repr(now),
                                    repr(event.created_at or now), math.ceil(SEEN_S * 1000),
                                    TTL_MS))

    def lease(self, owner: str, lease_s: float, limit: int = 20) -> list[OutboxEvent]:
        """Lease the due head event of up to `limit` streams to `owner` for `lease_s`."""
        now = self.clock()
        rows = self._run(LEASE, [self._due], repr(now), repr(now + lease_s), owner, limit)
        return [OutboxEvent(id=r[0], stream=r[1], body=r[2], attempts=int(r[3]),
                            created_at=float(r[4])) for r in rows]

    def ack(self, event_id: str) -> None:
        """The backend accepted the event: drop it, and let its stream's next event go."""
        self._run(ACK, [self._due], event_id, repr(self.clock()))

    def retry_at(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and hold the event (and its stream) until `at`."""
        self._run(RETRY, [self._due], event_id, owner, repr(at), error, TTL_MS)

    def set_aside(self, event_id: str, owner: str, at: float, error: str) -> None:
        """Count a failed attempt and retry the event at `at` on its own; its stream's next
        event may go now."""
        self._run(SET_ASIDE, [self._due], event_id, owner, repr(at), error, TTL_MS,
                  repr(self.clock()))

    def bury(self, event_id: str, owner: str, error: str) -> None:
        """Move the event to the dead list; its stream's next event may go."""
        now = self.clock()
        self._run(BURY, [self._due, self._dead], event_id, owner, repr(now), error, TTL_MS,
                  repr(now - DEAD_S))

    def dead(self, limit: int = 100) -> list[DeadEvent]:
        """Dead events, newest first (ids whose event expired are dropped)."""
        with self.db.errors():
            client = self.db.client()
            ids = cast(list[str], client.zrevrange(self._dead, 0, limit - 1))
            pipe = client.pipeline(transaction=False)
            for event_id in ids:
                pipe.hgetall(f"{self.prefix}ob:ev:{event_id}")
            events: list[DeadEvent] = []
            for event_id, fields in zip(ids, pipe.execute(), strict=True):
                if fields.get("state") != "dead":
                    client.zrem(self._dead, event_id)
                    continue
                events.append(DeadEvent(
                    id=event_id, stream=fields["stream"], body=fields["body"],
                    attempts=int(fields["attempts"]), created_at=float(fields["created_at"]),
                    dead_at=float(fields["dead_at"]), last_error=fields.get("last_error")))
            return events

    def revive(self, event_id: str) -> bool:
        """Queue a dead event again with a fresh attempt count; False when it is not dead."""
        return bool(self._run(REVIVE, [self._due, self._dead], repr(self.clock()), TTL_MS,
                              event_id))

    def revive_all(self) -> int:
        """Queue every dead event again, oldest first (a call's events keep their order);
        returns how many."""
        with self.db.errors():
            client = self.db.client()
            ids = cast(list[str], client.zrange(self._dead, 0, -1))
            pipe = client.pipeline(transaction=False)
            for event_id in ids:
                pipe.hget(f"{self.prefix}ob:ev:{event_id}", "created_at")
            created = [float(at or 0) for at in pipe.execute()]
        ordered = [event_id for _, event_id in sorted(zip(created, ids, strict=True))]
        revived = 0
        # In batches, so that one script never holds the server for long; each batch is
        # atomic, and an event that died meanwhile waits for the next retry.
        for start in range(0, len(ordered), REVIVE_BATCH):
            batch = ordered[start:start + REVIVE_BATCH]
            revived += int(self._run(REVIVE, [self._due, self._dead], repr(self.clock()),
                                     TTL_MS, *batch))
        return revived

    def delete_dead(self, event_id: str) -> bool:
        """Drop a dead event for good, its id still known for SEEN_S (a duplicate is not
        queued again); False when it is not dead."""
        keys = [self._dead, f"{self.prefix}ob:seen:{event_id}"]
        return bool(self._run(DELETE_DEAD, keys, event_id, math.ceil(SEEN_S * 1000)))

    def backlog(self) -> Backlog:
        """Pending events (over at most MAX_STREAMS_COUNTED calls) and dead events."""
        pending, dead = self._run(BACKLOG, [self._due, self._dead], MAX_STREAMS_COUNTED,
                                  repr(self.clock() - DEAD_S))
        return Backlog(pending=int(pending), dead=int(dead))

    def take_lease(self, name: str, lease_s: float) -> bool:
        """Take `name` for `lease_s` unless someone holds it and it has not run out."""
        with self.db.errors():
            return bool(self.db.client().set(f"{self.prefix}once:{name}", "1", nx=True,
                                          px=max(1, math.ceil(lease_s * 1000))))

    def renew_lease(self, name: str, lease_s: float) -> None:
        """Hold a taken lease for `lease_s` from now."""
        with self.db.errors():
            self.db.client().set(f"{self.prefix}once:{name}", "1",
                              px=max(1, math.ceil(lease_s * 1000)))

    def release_lease(self, name: str) -> None:
        """Give a lease up, so it can be taken again."""
        with self.db.errors():
            self.db.client().delete(f"{self.prefix}once:{name}")

    def close(self) -> None:
        """Disconnect this process's pool; the next call builds a new one."""
        self.db.close()
