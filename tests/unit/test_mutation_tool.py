"""scripts/mutation's counting and gate: what a verdict counts as, and when CI fails."""

from __future__ import annotations

from sandbox.mutation import (
    Tally,
    configured_modules,
    gate_failures,
    markdown,
    mutant_glob,
    report,
    tally,
)


def test_mutmut_exit_codes_are_counted_as_verdicts():
    # 1: a test failed; 3: pytest crashed; 37: the type check failed; 36/-24: timed out;
    # 0: all passed; 33: no test covers it; None: not checked; 34: skipped; -11: crashed.
    assert tally([1, 1, 3, 37, 36, -24, 0, 33, None, 34, -11]) == Tally(
        killed=4, timed_out=2, survived=2, other=3)


def test_kill_percent_counts_timeouts_as_caught_and_everything_else_against():
    assert Tally(killed=85, timed_out=5, survived=8, other=2).percent == 90.0
    assert Tally().percent == 0.0


def test_the_gate_fails_on_the_total_or_on_any_one_module():
    good = Tally(killed=95, survived=5)
    weak = Tally(killed=79, survived=21)
    assert gate_failures({"a.py": good, "b.py": good}, each=80, total=90) == []
    assert gate_failures({"a.py": good, "b.py": weak}, each=80, total=90) == [
        "b.py: 79.0 % < 80 %", "together: 87.0 % < 90 %"]
    assert gate_failures({"a.py": good, "b.py": weak}, each=70, total=85) == []


def test_the_report_has_a_row_per_module_and_one_together():
    text = report({"a.py": Tally(killed=9, survived=1), "b.py": Tally(killed=1, timed_out=1)})
    assert text.splitlines()[1:] == [
        "a.py           9          0         1      0     10   90.0",
        "b.py           1          1         0      0      2  100.0",
        "together      10          1         1      0     12   91.7"]


def test_modules_and_their_mutant_names():
    modules = configured_modules()
    assert {"services/legs/rules.py", "services/twilio/retries.py", "web/security.py",
            "services/twilio/dial_policy.py"} <= set(modules)
    assert not any(m.endswith("__init__.py") for m in modules)
    assert mutant_glob("services/legs/rules.py") == "services.legs.rules.*"


def test_the_markdown_table():
    assert markdown({"a.py": Tally(killed=9, survived=1)}).splitlines() == [
        "| module | killed | timed out | survived | total | kill % |",
        "|---|---:|---:|---:|---:|---:|",
        "| `a.py` | 9 | 0 | 1 | 10 | 90.0 |",
        "| **together** | 9 | 0 | 1 | 10 | 90.0 |"]
