"""monitoring/dashboard.json: a Grafana JSON model whose queries Prometheus parses, over exactly
the metrics docs/operations.md lists."""

from __future__ import annotations

import subprocess

import yaml

from tests.support.monitoring import (
    binary,
    dashboard,
    dashboard_queries,
    documented_metrics,
    documented_series,
    metric_names,
    runnable,
)

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def test_the_dashboard_is_a_grafana_json_model():
    model = dashboard()
    assert (model["uid"], model["title"]) == ("callrelay", "callrelay")
    assert model["id"] is None and isinstance(model["schemaVersion"], int)
    assert model["time"] == {"from": "now-6h", "to": "now"}
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {variables["job"]["type"], variables["instance"]["type"]} == {"query"}
    panels = model["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        box = panel["gridPos"]
        assert box["w"] > 0 and box["h"] > 0 and box["x"] >= 0 and box["x"] + box["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["type"] in ("timeseries", "stat"), panel["title"]
        assert panel["datasource"] == DATASOURCE and panel["description"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"] and t["datasource"] == DATASOURCE for t in panel["targets"])


def test_no_two_panels_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        box = panel["gridPos"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_rows_for_traffic_errors_latency_twilio_forwarding_and_the_store():
    rows = [p["title"] for p in dashboard()["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Errors", "Latency", "Twilio", "Forwarding", "Store and workers"]


def test_the_dashboard_shows_every_documented_metric_and_no_other():
    shown = {documented_series(name) for query in dashboard_queries()
             for name in metric_names(query)}
    assert shown == set(documented_metrics())


def test_prometheus_parses_every_query(tmp_path):
    # promtool has no query checker: each query becomes a recording rule, which it parses.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"callrelay_dashboard:query_{n}", "expr": runnable(query)}
        for n, query in enumerate(dashboard_queries())]}]}
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run([binary("promtool"), "check", "rules", "queries.yml"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
