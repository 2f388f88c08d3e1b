"""monitoring/alerts.yml: promtool accepts the rules and passes their unit tests; each alert is
tested firing and quiet, has a runbook in docs/operations.md, and reads documented metrics."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.support.monitoring import (
    MONITORING,
    ROOT,
    alert_rules,
    binary,
    documented_metrics,
    documented_series,
    metric_names,
)

OPERATIONS = (ROOT / "docs" / "operations.md").read_text()
ALERTS = [rule["alert"] for rule in alert_rules()]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], cwd=MONITORING, capture_output=True,
                          text=True, timeout=120, check=False)


def test_promtool_accepts_the_rules():
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_the_rules_pass_their_unit_tests():
    tested = promtool("test", "rules", "alerts.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_would_catch_a_wrong_threshold(tmp_path):
    # The unit tests are not vacuous: a backlog summed over instances (counting a shared
    # store's backlog once per instance) fails them.
    rules = (MONITORING / "alerts.yml").read_text()
    assert "max by (job) (callrelay_outbox_pending) > 500" in rules
    (tmp_path / "alerts.yml").write_text(rules.replace(
        "max by (job) (callrelay_outbox_pending) > 500",
        "sum by (job) (callrelay_outbox_pending) > 500"))
    (tmp_path / "alerts.test.yml").write_text((MONITORING / "alerts.test.yml").read_text())
    tested = subprocess.run([binary("promtool"), "test", "rules", "alerts.test.yml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            check=False)
    assert tested.returncode != 0
    assert "CallrelayForwardingBacklog" in tested.stdout + tested.stderr


def _labels(series: str) -> dict[str, str]:
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', series))


def _quiet_somewhere(test: dict[str, Any], alert: str) -> bool:
    """The test expects no alert at some time, or feeds series (another job or instance) that
    none of the alerts it expects carries."""
    evals = [e for e in test["alert_rule_test"] if e["alertname"] == alert]
    if any(not e.get("exp_alerts") for e in evals):
        return True
    expected = [a["exp_labels"] for e in evals for a in e["exp_alerts"]]
    for series in test["input_series"]:
        labels = _labels(series["series"])
        if not any(all(labels.get(k) == v for k, v in exp.items() if k in ("job", "instance"))
                   for exp in expected):
            return True
    return False


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_is_tested_firing_and_quiet(alert):
    tests = yaml.safe_load((MONITORING / "alerts.test.yml").read_text())["tests"]
    mine = [t for t in tests if any(e["alertname"] == alert for e in t["alert_rule_test"])]
    assert mine, f"no test evaluates {alert}"
    assert any(e.get("exp_alerts") for t in mine for e in t["alert_rule_test"]
               if e["alertname"] == alert), f"no test expects {alert} to fire"
    assert any(_quiet_somewhere(t, alert) for t in mine), f"no test expects {alert} quiet"


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERTS)
def test_every_alert_has_a_runbook_and_a_severity(rule):
    anchor = rule["alert"].lower()
    assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}"
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"]
    heading = f"\n### {rule['alert']}\n"
    assert heading in OPERATIONS, f"docs/operations.md has no section {heading.strip()}"
    section = OPERATIONS[OPERATIONS.index(heading):]
    section = section[:section.index("\n#", len(heading))]
    for part in ("**What it means:**", "**What to check:**", "**What to do:**"):
        assert part in section, (rule["alert"], part)
    row = re.search(rf"^\| \[`{rule['alert']}`\]\(#{anchor}\) \| (\w+) \|", OPERATIONS, re.M)
    assert row and row.group(1) == rule["labels"]["severity"], "the alert table disagrees"


def test_the_alert_table_lists_exactly_the_rules():
    listed = re.findall(r"^\| \[`(Callrelay\w+)`\]", OPERATIONS, re.M)
    assert listed == ALERTS


@pytest.mark.parametrize("rule", alert_rules(), ids=ALERTS)
def test_every_metric_an_alert_reads_is_documented(rule):
    names = {documented_series(name) for name in metric_names(rule["expr"])}
    assert names and names - {"up"} <= set(documented_metrics())
