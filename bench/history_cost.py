"""What recording the message history adds to a /notify, roughly: `python -m bench.history_cost`.

In one process, on a quiet Twilio stand-in that answers at once (so the store is all that
differs): the same /notify through create_app's routes with the history on and off, alternated
in rounds, and the history write alone. SQLite in a temporary file; Redis too when a server
answers (`--redis`, a unique key prefix, deleted afterwards). Medians of microseconds per
request; a shared machine makes them rough, which is all this is for.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import redis

from app import create_app
from config.settings import Settings
from services.legs.model import Leg, LegEvent
from services.legs.rules import Retention
from services.store.open import Stores, open_stores
from services.store.redis.conferences import RedisConferenceStore
from services.store.redis.database import RedisDatabase
from services.store.redis.history import RedisMessageHistory
from services.store.redis.legs import RedisStore
from services.store.redis.outbox import RedisOutbox
from services.twilio.port import SentMessage
from services.use_cases.call_history import CallHistory
from services.use_cases.notify_delivery import Attempt

ACCOUNT_SID = "AC" + "0" * 32
TOKEN = "bench-relay-token-0123456789"
CONTENT = {"type": "offer", "price": 42, "items": list(range(20))}


class InstantTwilio:
    """Answers every UserDefinedMessage at once: only callrelay's own work is timed."""

    def send_message(self, call_sid: str, content: str, idempotency_key: str | None, *,
                     deadline: float | None = None) -> SentMessage:
        return SentMessage(sid="KX" + uuid.uuid4().hex, call_sid=call_sid,
                           account_sid=ACCOUNT_SID, date_created=None)

    def __getattr__(self, name: str) -> Callable[..., object]:
        raise NotImplementedError(f"the bench's Twilio does not {name}")


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _time(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(stores: Stores, url: str, rounds: int, per_round: int) -> dict[str, float]:
    """Median µs of a /notify with and without the history, and of the history write alone."""
    assert stores.history is not None
    settings = Settings.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "x",
                                  "RELAY_API_TOKENS": TOKEN, "STORE_URL": url,
                                  "LOG_LEVEL": "WARNING"})
    call = "CA" + uuid.uuid4().hex
    stores.legs.apply(LegEvent(call_sid=call, status="in-progress", from_="client:alice",
                               to="+15005550006", direction="inbound"))
    clients = {"on": create_app(settings, store=stores, twilio=InstantTwilio()).test_client(),
               "off": create_app(settings, store=replace(stores, history=None),
                                 twilio=InstantTwilio()).test_client()}
    body = json.dumps({"call_sid": call, "content": CONTENT})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    samples: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(rounds):  # alternated, so that the machine's moods fall on both
        for mode, client in clients.items():
            samples[mode] += _time(lambda c=client: c.post(  # type: ignore[misc]
                "/notify", data=body, content_type="application/json", headers=headers),
                per_round)
    history = CallHistory(stores.history)
    leg = Leg(call_sid=call, status="in-progress", identity="alice")
    write = _time(lambda: history.delivered(body, [Attempt(leg, None, SentMessage(
        sid="KX" + uuid.uuid4().hex, call_sid=call, account_sid=ACCOUNT_SID,
        date_created=None))]), rounds * per_round)
    on, off = _median_us(samples["on"]), _median_us(samples["off"])
    return {"notify_with_history_us": on, "notify_without_history_us": off,
            "added_us": on - off, "history_write_us": _median_us(write)}


def redis_stores(url: str, prefix: str) -> Stores:
    """The Redis adapters under a prefix of their own."""
    db, retention = RedisDatabase(url), Retention()
    return Stores(RedisStore(db, retention, prefix=prefix), RedisOutbox(db, prefix=prefix),
                  RedisConferenceStore(db, retention, prefix=prefix),
                  RedisMessageHistory(db, retention, prefix=prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        stores = open_stores(url, Retention())
        results["sqlite"] = measure(stores, url, args.rounds, args.per_round)
        stores.close()
        client = redis.Redis.from_url(args.redis)
        try:
            client.ping()
        except redis.RedisError as exc:
            print(f"redis: not run ({exc.__class__.__name__})")
        else:
            prefix = f"callrelay-bench:{uuid.uuid4().hex}:"
            stores = redis_stores(args.redis, prefix)
            try:
                results["redis"] = measure(stores, url, args.rounds, args.per_round)
            finally:
                stores.close()
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                if keys:
                    client.delete(*keys)
    for kind, figures in results.items():
        print(kind, ", ".join(f"{name} {value:.0f}" for name, value in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
