"""The three parts of the benchmark: webhook ingestion, /notify, and scale."""

from __future__ import annotations

import base64
import json
import math
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

from bench import servers
from bench.context import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALLERS,
    RELAY_TOKEN,
    TWILIO_DELAY_S,
    Context,
)
from bench.report import Row, Run, median, ratio_row
from bench.seed import count_legs, live_targets, reset, seed
from bench.servers import ROOT, RUNTIME_PYTHON
from bench.workload import Prepared, new_sid, notify_requests, status_callbacks

WORKERS = 2  # callrelay's default WEB_CONCURRENCY; callrelay runs with its other defaults
# The quickstart baselines run as quickstarts deploy: gunicorn's gthread worker.
WEBHOOK_THREADS = 8
NOTIFY_THREADS = 16
IDEAL_NOTIFY_RPS = CALLERS / TWILIO_DELAY_S
RELAY_CONFIG = f"{WORKERS} gevent workers"
RSS_TARGET = 1.3  # a worker's memory against the quickstart's (issue #20)


@contextmanager
def started(*group: servers.Server) -> Iterator[None]:
    """Start servers, and stop every one of them whatever happens."""
    try:
        for server in group:
            server.start()
        yield
    finally:
        for server in group:
            server.stop()


def _rps(run: Run) -> float:
    return run.result.rps


def _p50(run: Run) -> float:
    return run.result.p50_ms


def _p99(run: Run) -> float:
    return run.result.p99_ms


def _cpu(run: Run) -> float:
    return run.cpu_ms_per_request


def _rss(run: Run) -> float:
    return max(run.worker_rss_mib, default=0.0)


def _busiest(run: Run) -> float:
    return run.extra.get("busiest_worker_connections", 0.0)


def _callback_step(ctx: Context, label: str, server: servers.Server, duration_s: float,
                   rates: dict[str, float], before: Callable[[], None] | None = None
                   ) -> Callable[[], Run]:
    """A run of fresh signed status callbacks, enough for `duration_s` at the rate seen so far."""

    def step() -> Run:
        if before is not None:
            before()
        calls = math.ceil(max(rates.get(label, 3000.0), 500.0) * duration_s * 2 / 6)
        requests = ctx.requests_file(status_callbacks(server.url, ACCOUNT_SID, AUTH_TOKEN, calls))
        run = ctx.measure(label, server, requests, duration_s=duration_s)
        rates[label] = max(rates.get(label, 0.0), run.result.rps)
        return run

    return step


def webhooks(ctx: Context) -> list[Row]:
    """Signed status callbacks into /twilio/status against the quickstart handler."""
    o = ctx.options
    base = servers.gunicorn_app("quickstart-webhook", "bench.baselines.quickstart_webhook:app",
                                WORKERS, WEBHOOK_THREADS, ctx.log("quickstart-webhook"),
                                ctx.baseline_env())
    relay = servers.callrelay("callrelay-webhooks", WORKERS, ctx.log("callrelay-webhooks"),
                              ctx.relay_env(f"sqlite:///{ctx.workdir}/webhooks.sqlite3"))
    rates: dict[str, float] = {}
    ctx.say(f"webhooks: quickstart {WORKERS}x{WEBHOOK_THREADS} gthread, callrelay "
            f"{RELAY_CONFIG}, {CALLERS} connections")
    with started(base, relay):
        for label, server in (("quickstart", base), ("callrelay", relay)):
            _callback_step(ctx, label, server, o.warmup_s, rates)()
        runs = ctx.interleave("webhooks", o.rounds, [
            ("quickstart", _callback_step(ctx, "quickstart", base, o.duration_s, rates)),
            ("callrelay", _callback_step(ctx, "callrelay", relay, o.duration_s, rates))])
    b, s = runs["quickstart"], runs["callrelay"]
    part, config = "1 webhooks", f"{WORKERS}x{WEBHOOK_THREADS} gthread"
    return [
        *in_process_cpu(ctx),
        ratio_row(part, f"signed callbacks/s into /twilio/status (quickstart {config})", "/s",
                  "quickstart", b, s, _rps, at_least=1.0),
        ratio_row(part, "p99 latency", "ms", "quickstart", b, s, _p99, at_most=2.0, digits=1),
        ratio_row(part, f"connections on the busiest worker (of {CALLERS})", "", "quickstart",
                  b, s, _busiest),
        ratio_row(part, "server CPU per callback", "ms", "quickstart", b, s, _cpu, digits=2),
        ratio_row(part, "RSS per worker after the runs", "MiB", "quickstart", b, s, _rss,
                  at_most=RSS_TARGET),
    ]


def in_process_cpu(ctx: Context) -> list[Row]:
    """CPU per callback of both apps in one gevent process (bench/cpu_callbacks.py): steadier
    than the servers' figures on a busy machine, and without gunicorn's parsing."""
    rounds = max(2, ctx.options.rounds)
    per_round = 500 if ctx.options.duration_s < 4 else 2000
    ctx.say(f"webhooks in one process: {rounds} rounds of {per_round} callbacks")
    done = subprocess.run([str(RUNTIME_PYTHON), "-m", "bench.cpu_callbacks", "--json",
                           "--rounds", str(rounds), "--per-round", str(per_round)],
                          capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    if done.returncode != 0:
        ctx.say(f"  bench.cpu_callbacks failed: {done.stderr.strip()[-300:]}")
        return [Row("1 webhooks", "CPU per callback in one process", "—", "failed", None,
                    errors=1)]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    low, high = got["cpu_ratio_range"]
    ctx.say(f"  quickstart {got['quickstart_us']} µs, callrelay {got['callrelay_us']} µs")
    return [Row("1 webhooks", "CPU per callback in one gevent process (bench.cpu_callbacks)",
                f"quickstart {got['quickstart_us']:.0f} µs", f"{got['callrelay_us']:.0f} µs",
                got["cpu_ratio"], "", None, 0, f"rounds {low:.2f}-{high:.2f}x")]


def _twilio_requests(count: int) -> Iterator[Prepared]:
    """What the SDK sends to create a UserDefinedMessage, for measuring the fakes alone."""
    auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    headers = (("Content-Type", "application/x-www-form-urlencoded"),
               ("Authorization", f"Basic {auth}"))
    for i in range(count):
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{new_sid()}/UserDefinedMessages.json"
        body = urlencode({"Content": f'{{"seq":{i}}}', "IdempotencyKey": f"bench-{i}"})
        yield Prepared("POST", path, headers, body)


def _stand_in_row(name: str, run: Run, *, must_keep_up: bool) -> Row:
    ratio = run.result.rps / IDEAL_NOTIFY_RPS
    return Row("2 notify", f"Twilio stand-in alone: {name}", f"ideal {IDEAL_NOTIFY_RPS:.0f} /s",
               f"{run.result.rps:.0f} /s, p99 {run.result.p99_ms:.0f} ms", ratio,
               "≥ 0.9x" if must_keep_up else "", ratio >= 0.9 if must_keep_up else None,
               run.result.errors, f"{run.cpu_ms_per_request:.2f} CPU ms/answer")


def twilio_fakes(ctx: Context) -> list[Row]:
    """How many answers a second each Twilio stand-in gives 32 callers (ideal: 32 / 50 ms).

    The lean fake must keep up, or it would be what the /notify figures measure; the sandbox
    mock is shown for comparison (it costs far more CPU per answer on the same cores).
    """
    mock = servers.fake_twilio("mock", ACCOUNT_SID, AUTH_TOKEN, TWILIO_DELAY_S,
                               ctx.log("twilio-mock"))
    requests = ctx.requests_file(_twilio_requests(20_000))
    ctx.say("Twilio stand-ins alone: the lean fake and sandbox.twilio_mock, 50 ms each")
    with started(mock):
        lean = ctx.measure("lean fake", ctx.fake, requests, duration_s=5)
        sandbox = ctx.measure("sandbox mock", mock, requests, duration_s=5)
    return [_stand_in_row("lean fake (bench/fake_twilio.py)", lean, must_keep_up=True),
            _stand_in_row("sandbox.twilio_mock", sandbox, must_keep_up=False)]


def notify(ctx: Context) -> list[Row]:
    """/notify against the quickstart relay, both sending through the lean fake Twilio."""
    o = ctx.options
    targets = live_targets()
    store_url = f"sqlite:///{ctx.workdir}/notify.sqlite3"
    seed(store_url, 2 * len(targets), targets)
    base = servers.gunicorn_app("quickstart-relay", "bench.baselines.quickstart_relay:app",
                                WORKERS, NOTIFY_THREADS, ctx.log("quickstart-relay"),
                                ctx.baseline_env())
    relay = servers.callrelay("callrelay-notify", WORKERS, ctx.log("callrelay-notify"),
                              ctx.relay_env(store_url))
    requests = ctx.requests_file(notify_requests(targets, RELAY_TOKEN, 40_000, by_identity=False))
    ctx.say(f"notify: quickstart {WORKERS}x{NOTIFY_THREADS} gthread, callrelay {RELAY_CONFIG}, "
            f"{CALLERS} callers, "
            f"Twilio answers after {TWILIO_DELAY_S * 1000:.0f} ms")

    def step(label: str, server: servers.Server, duration_s: float) -> Callable[[], Run]:
        return lambda: ctx.measure(label, server, requests, duration_s=duration_s,
                                   watch=ctx.fake)

    with started(base, relay):
        step("quickstart", base, o.warmup_s)()
        step("callrelay", relay, o.warmup_s)()
        runs = ctx.interleave("notify", o.rounds, [
            ("quickstart", step("quickstart", base, o.duration_s)),
            ("callrelay", step("callrelay", relay, o.duration_s))])
    b, s = runs["quickstart"], runs["callrelay"]
    part, config = "2 notify", f"{WORKERS}x{NOTIFY_THREADS} gthread"
    p99 = median(s, _p99)
    twilio_ms = TWILIO_DELAY_S * 1000

    def per_1000(run: Run) -> float:
        return run.extra["twilio_connections"] / max(run.extra["twilio_messages"], 1) * 1000

    return [
        ratio_row(part, f"/notify requests/s (quickstart {config}, {CALLERS} callers)", "/s",
                  "quickstart", b, s, _rps, at_least=1.0),
        ratio_row(part, "/notify p50 latency", "ms", "quickstart", b, s, _p50, digits=1),
        ratio_row(part, "/notify p99 latency", "ms", "quickstart", b, s, _p99, digits=1),
        Row(part, "/notify p99 against Twilio's latency", f"Twilio {twilio_ms:.0f} ms",
            f"{p99:.1f} ms", p99 / twilio_ms, "≤ 3x", p99 <= 3 * twilio_ms),
        ratio_row(part, f"connections on the busiest worker (of {CALLERS})", "", "quickstart",
                  b, s, _busiest),
        ratio_row(part, "connections opened to Twilio per 1000 messages", "", "quickstart",
                  b, s, per_1000, digits=1),
        ratio_row(part, "server CPU per /notify", "ms", "quickstart", b, s, _cpu, digits=2),
        ratio_row(part, "RSS per worker", "MiB", "quickstart", b, s, _rss),
    ]


def scale(ctx: Context, backend: str, small_url: str, big_url: str,
          processes: int = 1) -> list[Row]:
    """The same callrelay with 100 legs stored and with `legs` legs stored."""
    o = ctx.options
    targets = live_targets()
    ctx.say(f"scale/{backend}: seeding 100 and {o.legs:,} legs")
    seed(small_url, 2 * len(targets), targets)
    seconds = seed(big_url, o.legs, targets, processes=processes)
    ctx.say(f"scale/{backend}: {count_legs(big_url):,} legs stored in {seconds:.0f} s")
    small = servers.callrelay(f"callrelay-{backend}-small", WORKERS,
                              ctx.log(f"callrelay-{backend}-small"), ctx.relay_env(small_url))
    big = servers.callrelay(f"callrelay-{backend}-big", WORKERS,
                            ctx.log(f"callrelay-{backend}-big"), ctx.relay_env(big_url))
    # Half by call_sid, half by identity: the identity lookup is the one a big registry
    # could slow down (the targets' users also have ended calls in the big one).
    requests = ctx.requests_file(notify_requests(targets, RELAY_TOKEN, 40_000, by_identity=True))
    rates: dict[str, float] = {}

    def notify_step(label: str, server: servers.Server, duration_s: float) -> Callable[[], Run]:
        return lambda: ctx.measure(label, server, requests, duration_s=duration_s)

    with started(small, big):
        notify_step("100 legs", small, o.warmup_s)()
        notify_step(f"{o.legs:,} legs", big, o.warmup_s)()
        notified = ctx.interleave(f"scale-{backend}-notify", o.scale_rounds, [
            ("small", notify_step("100 legs", small, o.scale_duration_s)),
            ("big", notify_step(f"{o.legs:,} legs", big, o.scale_duration_s))])
        # Every callback stores legs: the small registry is put back to 100 legs each time.
        hooked = ctx.interleave(f"scale-{backend}-webhooks", o.scale_rounds, [
            ("small", _callback_step(ctx, "100 legs", small, o.scale_duration_s, rates,
                                     before=lambda: reset(small_url, targets))),
            ("big", _callback_step(ctx, f"{o.legs:,} legs", big, o.scale_duration_s, rates))])
    end = count_legs(big_url)
    part, base = f"3 scale, {backend}", "100 legs"
    big_note = f"{o.legs:,} legs, {end:,} at the end"
    ns, nb, ws, wb = notified["small"], notified["big"], hooked["small"], hooked["big"]
    return [
        ratio_row(part, f"/notify p50 ({big_note})", "ms", base, ns, nb, _p50, at_most=1.1,
                  digits=1),
        ratio_row(part, "/notify p99", "ms", base, ns, nb, _p99, at_most=1.1, digits=1),
        ratio_row(part, "/notify requests/s", "/s", base, ns, nb, _rps, at_least=0.9),
        ratio_row(part, "signed callbacks/s", "/s", base, ws, wb, _rps, at_least=0.9),
        ratio_row(part, "RSS per worker", "MiB", base, ns + ws, nb + wb, _rss, at_most=1.1),
    ]
