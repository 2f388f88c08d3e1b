"""What the monitoring tests read (the alert rules, the dashboard, the metrics table of
docs/operations.md) and run: Debian's `promtool` and a real `prometheus` server.

Without the binaries the tests skip; CI installs them (.ci/run) and sets
CALLRELAY_REQUIRE_PROMETHEUS=1, so there a missing binary fails the test instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sandbox.devtools import ROOT, free_port

MONITORING = ROOT / "monitoring"
# Metric names are callrelay's own, plus Prometheus's `up`.
_METRIC = re.compile(r"\b(callrelay_[a-z0-9_]+|up)\b")
_HISTOGRAM_SERIES = re.compile(r"_(bucket|count|sum)$")
# Grafana's variables, replaced by what Prometheus accepts when a query is run without Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "callrelay", "$instance": ".*"}


def binary(name: str) -> str:
    """The path of `name` (prometheus, promtool); skip without it unless it is required."""
    found = shutil.which(name)
    if found is None:
        reason = f"{name} is not on PATH (apt-get install prometheus)"
        if os.environ.get("CALLRELAY_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"{reason} (CALLRELAY_REQUIRE_PROMETHEUS=1)")
        pytest.skip(reason)
    return found


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of monitoring/alerts.yml."""
    groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard's JSON model."""
    loaded: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text())
    return loaded


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard: its panels' targets and its variables' queries."""
    queries = [target["expr"] for panel in dashboard()["panels"]
               for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(<selector>, <label>) asks for the series of <selector>.
            found = re.fullmatch(r"label_values\((.+), *[a-z_]+\)",
                                 variable["query"]["query"])
            assert found, variable["query"]
            queries.append(found.group(1))
    return queries


def runnable(query: str) -> str:
    """A dashboard query with Grafana's variables replaced, for Prometheus alone."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    return query


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL query reads (callrelay's, and `up`), without label names or
    functions: label matchers and `by (…)` lists are removed first."""
    query = re.sub(r'\{[^}]*\}', "", query)
    query = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", query)
    query = re.sub(r'"[^"]*"', "", query)
    return set(_METRIC.findall(query))


def documented_metrics() -> dict[str, tuple[str, frozenset[str]]]:
    """The metrics table of docs/operations.md: name -> (type, label names)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("\n## Metrics\n"):]
    section = section[:section.index("\n## ", 1)]
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for line in section.splitlines():
        if not line.startswith("| `callrelay_"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name, kind, labels = cells[0].strip("`"), cells[1].split()[0], cells[2]
        while re.search(r"\([^()]*\)", labels):  # explanations in parentheses are not labels
            labels = re.sub(r"\([^()]*\)", "", labels)
        assert name not in found, f"{name} is listed twice"
        found[name] = (kind, frozenset(re.findall(r"`([a-z_]+)`", labels)))
    return found


def documented_series(name: str) -> str:
    """The documented metric a series belongs to: a histogram's `_bucket`, `_count` and
    `_sum` are its own name."""
    documented = documented_metrics()
    if name in documented or name == "up":
        return name
    base = _HISTOGRAM_SERIES.sub("", name)
    return base if documented.get(base, ("",))[0] == "histogram" else name


class PrometheusServer:
    """A real `prometheus` on a free port, with a temporary config and storage directory,
    scraping one target every second and evaluating monitoring/alerts.yml."""

    def __init__(self, target: str, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.target = target
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(MONITORING / "alerts.yml")],
            "scrape_configs": [{"job_name": "callrelay",
                                "static_configs": [{"targets": [self.target]}]}],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary("prometheus"), f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited; see {self.workdir / 'prometheus.log'}")
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus did not become ready on {self.url}")

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer of Prometheus's HTTP API."""
        answer = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
