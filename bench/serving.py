"""The serving-model parts: /notify with Twilio at 300 ms and 128 in flight, and stalled clients."""

from __future__ import annotations

from collections.abc import Callable

from bench import servers
from bench.context import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    RELAY_TOKEN,
    SLOW_CALLERS,
    SLOW_TWILIO_DELAY_S,
    STALLED,
    Context,
)
from bench.parts import NOTIFY_THREADS, RELAY_CONFIG, WEBHOOK_THREADS, WORKERS, started
from bench.report import Row, Run, median, ratio_row
from bench.seed import live_targets, seed
from bench.stalled import Probe, while_stalled
from bench.workload import Prepared, notify_requests, status_callbacks

SLOW_CEILING_RPS = SLOW_CALLERS / SLOW_TWILIO_DELAY_S  # every caller always waiting on Twilio
ANSWER_WITHIN_S = 1.0


def _rps(run: Run) -> float:
    return run.result.rps


def _p99(run: Run) -> float:
    return run.result.p99_ms


def slow_notify(ctx: Context) -> list[Row]:
    """/notify when Twilio takes 300 ms: many requests in flight, little CPU each."""
    o = ctx.options
    twilio = servers.fake_twilio("lean", ACCOUNT_SID, AUTH_TOKEN, SLOW_TWILIO_DELAY_S,
                                 ctx.log("twilio-lean-slow"), name="twilio-lean-slow")
    targets = live_targets()
    store_url = f"sqlite:///{ctx.workdir}/notify-slow.sqlite3"
    seed(store_url, 2 * len(targets), targets)
    base = servers.gunicorn_app("quickstart-relay-slow", "bench.baselines.quickstart_relay:app",
                                WORKERS, NOTIFY_THREADS, ctx.log("quickstart-relay-slow"),
                                ctx.baseline_env(twilio))
    relay = servers.callrelay("callrelay-notify-slow", WORKERS, ctx.log("callrelay-notify-slow"),
                              ctx.relay_env(store_url, twilio))
    requests = ctx.requests_file(notify_requests(targets, RELAY_TOKEN, 40_000, by_identity=False))
    ctx.say(f"notify, slow Twilio: quickstart {WORKERS}x{NOTIFY_THREADS} gthread, callrelay "
            f"{RELAY_CONFIG}, {SLOW_CALLERS} callers, Twilio answers after "
            f"{SLOW_TWILIO_DELAY_S * 1000:.0f} ms")

    def step(label: str, server: servers.Server, duration_s: float) -> Callable[[], Run]:
        return lambda: ctx.measure(label, server, requests, duration_s=duration_s,
                                   connections=SLOW_CALLERS)

    with started(twilio, base, relay):
        step("quickstart", base, o.warmup_s)()
        step("callrelay", relay, o.warmup_s)()
        runs = ctx.interleave("notify-slow", o.rounds, [
            ("quickstart", step("quickstart", base, o.duration_s)),
            ("callrelay", step("callrelay", relay, o.duration_s))])
    b, s = runs["quickstart"], runs["callrelay"]
    part = "2b notify, Twilio 300 ms"
    twilio_ms = SLOW_TWILIO_DELAY_S * 1000
    return [
        ratio_row(part, f"/notify requests/s (quickstart {WORKERS}x{NOTIFY_THREADS} gthread, "
                  f"{SLOW_CALLERS} callers)", "/s", "quickstart", b, s, _rps, at_least=3.0),
        against(part, "/notify requests/s against the ceiling (callers / Twilio's latency)",
                "ceiling", SLOW_CEILING_RPS, "/s", s, _rps, at_least=0.9),
        ratio_row(part, "/notify p99 latency", "ms", "quickstart", b, s, _p99, digits=1),
        against(part, "/notify p99 latency against Twilio's latency", "Twilio", twilio_ms, "ms",
                s, _p99, at_most=2.0, digits=1),
        ratio_row(part, "connections on the busiest worker (of "
                  f"{SLOW_CALLERS})", "", "quickstart", b, s, _busiest),
    ]


def _busiest(run: Run) -> float:
    return run.extra.get("busiest_worker_connections", 0.0)


def against(part: str, measure: str, name: str, fixed: float, unit: str, runs: list[Run],
            value: Callable[[Run], float], *, at_least: float | None = None,
            at_most: float | None = None, digits: int = 0) -> Row:
    """The median of `value` against a fixed figure, with the per-round range."""
    got = median(runs, value)
    ratio = got / fixed
    met = ratio >= at_least if at_least is not None else ratio <= (at_most or 0.0)
    per_round = [value(run) / fixed for run in runs]
    return Row(part, measure, f"{name} {fixed:.{digits}f} {unit}", f"{got:.{digits}f} {unit}",
               ratio, f"≥ {at_least:g}x" if at_least is not None else f"≤ {at_most:g}x",
               met, sum(r.result.errors for r in runs),
               f"rounds {min(per_round):.2f}-{max(per_round):.2f}x" if per_round else "")


def _probe_row(server_name: str, what: str, opened: int, probes: list[Probe],
               target: bool) -> Row:
    mine = [p for p in probes if p.what == what]
    worst = max((p.seconds for p in mine), default=0.0)
    failed = sum(1 for p in mine if p.status is None or not 200 <= p.status < 300)
    met = failed == 0 and worst <= ANSWER_WITHIN_S
    return Row("4 stalled clients", f"{server_name}: slowest {what} of {len(mine)}, with "
               f"{opened} stalled connections open", f"limit {ANSWER_WITHIN_S:g} s",
               f"{worst:.3f} s", worst / ANSWER_WITHIN_S, f"≤ {ANSWER_WITHIN_S:g} s" if target
               else "", met if target else None, failed if target else 0,
               "" if target else f"for comparison; {failed} failed or timed out (5 s)")


def _probes(url: str, health: str | None) -> Callable[[], list[tuple[str, Prepared]]]:
    """Each round: a fresh signed status callback, and GET `health` when given."""
    calls = iter(status_callbacks(url, ACCOUNT_SID, AUTH_TOKEN, 200))

    def round_() -> list[tuple[str, Prepared]]:
        chosen = [("signed webhook", next(calls))]
        if health is not None:
            chosen.append(("/healthz", Prepared("GET", health, (), "")))
        return chosen

    return round_


def stalled_clients(ctx: Context) -> list[Row]:
    """/healthz and signed webhooks while 200 connections hold half a request each."""
    relay = servers.callrelay("callrelay-stalled", WORKERS, ctx.log("callrelay-stalled"),
                              ctx.relay_env(f"sqlite:///{ctx.workdir}/stalled.sqlite3"))
    base = servers.gunicorn_app("quickstart-webhook-stalled",
                                "bench.baselines.quickstart_webhook:app", WORKERS,
                                WEBHOOK_THREADS, ctx.log("quickstart-webhook-stalled"),
                                ctx.baseline_env())
    rows: list[Row] = []
    ctx.say(f"stalled clients: {STALLED} connections with half a request each")
    with started(relay, base):
        for name, server, health in (("callrelay", relay, "/healthz"),
                                     ("quickstart", base, None)):
            opened, probed = while_stalled(server.url, STALLED, _probes(server.url, health),
                                           hold_s=3.0)
            ctx.say(f"  {name}: {opened} stalled; slowest answers "
                    f"{max((p.seconds for p in probed), default=0):.3f} s, statuses "
                    f"{sorted({p.status for p in probed}, key=str)}")
            target = name == "callrelay"
            rows.append(_probe_row(name, "signed webhook", opened, probed, target))
            if health is not None:
                rows.append(_probe_row(name, "/healthz", opened, probed, target))
    return rows
