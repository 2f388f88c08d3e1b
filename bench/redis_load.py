"""The Redis load model (docs/redis.md#load-model): `python -m bench.redis_load --redis URL
[--cluster]`.

In one process, the real app (create_app's routes, signed webhooks, a Twilio stand-in that
answers at once) on a Redis server or a Redis Cluster that nothing else uses: N phone-to-SDK
calls played as Twilio sends their webhooks, then a /notify per call by call SID. For each
phase, from `INFO commandstats` and `INFO cpu` before and after, summed over the primaries:
the Redis commands each request costs (those its scripts run included), and the server CPU it
takes. A Redis shard runs commands on one core, so 1 s / (the busiest shard's CPU per call) is
the calls a second the deployment carries (a call: its callbacks and one /notify).
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from typing import Any, cast

from redis.cluster import RedisCluster
from twilio.request_validator import RequestValidator

from app import create_app
from bench.history_cost import ACCOUNT_SID, TOKEN, InstantTwilio
from config.settings import Settings
from sandbox.calls import phone_calls_sdk
from services.legs.rules import Retention
from services.store.open import Stores
from services.store.redis.conferences import RedisConferenceStore
from services.store.redis.database import RedisDatabase
from services.store.redis.history import RedisMessageHistory
from services.store.redis.legs import RedisStore
from services.store.redis.outbox import RedisOutbox
from services.store.redis.topology import RedisTopology

AUTH_TOKEN = "bench-auth-token"  # signs the bench's own webhooks
PUBLIC = "https://relay.example.com"


def _primaries(db: RedisDatabase, section: str) -> list[dict[str, Any]]:
    client = db.client()
    if db.topology.cluster:
        found = cast(RedisCluster, client).info(section, target_nodes=RedisCluster.PRIMARIES)
        return list(found.values())
    return [client.info(section)]


def snapshot(db: RedisDatabase) -> tuple[int, list[float]]:
    """(commands run, CPU seconds used by each primary) so far, INFO itself left out."""
    commands = sum(int(v["calls"]) for info in _primaries(db, "commandstats")
                   for k, v in info.items() if k != "cmdstat_info")
    cpu = [float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
           for info in _primaries(db, "cpu")]
    return commands, cpu


def phase(db: RedisDatabase, run: Callable[[], int]) -> tuple[float, float, float]:
    """Commands, CPU microseconds (all shards) and the busiest shard's CPU microseconds, per
    request of `run` (which returns how many it made)."""
    commands, cpu = snapshot(db)
    requests = run()
    after_commands, after_cpu = snapshot(db)
    spent = [(b - a) * 1e6 / requests for a, b in zip(cpu, after_cpu, strict=True)]
    return (after_commands - commands) / requests, sum(spent), max(spent)


def measure(url: str, topology: RedisTopology, calls: int) -> dict[str, float]:
    db, retention = RedisDatabase(url, topology), Retention()
    prefix = f"callrelay-bench:{uuid.uuid4().hex[:12]}:"
    stores = Stores(RedisStore(db, retention, prefix=prefix), RedisOutbox(db, prefix=prefix),
                    RedisConferenceStore(db, retention, prefix=prefix),
                    RedisMessageHistory(db, retention, prefix=prefix), db)
    settings = Settings.from_env({"TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                                  "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "RELAY_API_TOKENS": TOKEN,
                                  "PUBLIC_BASE_URL": PUBLIC, "LOG_LEVEL": "WARNING"})
    client = create_app(settings, store=stores, twilio=InstantTwilio()).test_client()
    validator = RequestValidator(AUTH_TOKEN)
    played = [phone_calls_sdk(ACCOUNT_SID, identity=f"user-{n}") for n in range(calls)]

    def webhooks(steps: str) -> int:
        sent = 0
        for call in played:
            for step in getattr(call, steps):
                signature = validator.compute_signature(PUBLIC + step.path, step.params)
                answer = client.post(step.path, data=step.params,
                                     headers={"X-Twilio-Signature": signature})
                assert answer.status_code in (200, 204), answer.status_code
                sent += 1
        return sent

    def notifies() -> int:
        for call in played:
            answer = client.post("/notify", data=json.dumps(call.notify_body()),
                                 content_type="application/json",
                                 headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 201, answer.status_code
        return len(played)

    try:
        answers, hangups = len(played[0].answer), len(played[0].hangup)
        answer = phase(db, lambda: webhooks("answer"))
        notify = phase(db, notifies)
        hangup = phase(db, lambda: webhooks("hangup"))
        per_call = answers + hangups
        callback = [(a * answers + h * hangups) / per_call
                    for a, h in zip(answer, hangup, strict=True)]
        call_us = callback[1] * per_call + notify[1]
        busiest_us = callback[2] * per_call + notify[2]
        return {"callbacks_per_call": per_call, "commands_per_callback": callback[0],
                "commands_per_notify": notify[0], "cpu_us_per_callback": callback[1],
                "cpu_us_per_notify": notify[1], "cpu_us_per_call": call_us,
                "busiest_shard_cpu_us_per_call": busiest_us,
                "calls_per_s": 1e6 / busiest_us}
    finally:
        stores.close()
        raw = db.client()
        for key in list(raw.scan_iter(match=f"{prefix}*", count=1000)):
            raw.delete(key)
        db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", required=True, help="a Redis nothing else uses")
    parser.add_argument("--cluster", action="store_true", help="--redis is a cluster's node")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args(argv)
    topology = RedisTopology("cluster") if args.cluster else RedisTopology()
    figures = measure(args.redis, topology, args.calls)
    print(("Redis Cluster" if args.cluster else "Redis") + f" ({args.calls} calls): "
          + ", ".join(f"{name} {value:,.1f}" for name, value in figures.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
