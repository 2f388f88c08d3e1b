"""The benchmark's results: measured runs, compared rows, and the table they print as."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.load import LoadResult


@dataclass(frozen=True)
class Run:
    """One load run against one server, with the server's own cost."""

    label: str
    result: LoadResult
    cpu_ms_per_request: float
    worker_rss_mib: list[float]
    extra: dict[str, float] = field(default_factory=dict)


def median(runs: Sequence[Run], value: Callable[[Run], float]) -> float:
    """The median of `value` over runs (0 for none)."""
    return statistics.median(value(run) for run in runs) if runs else 0.0


def errors(runs: Sequence[Run]) -> int:
    """Non-2xx answers, socket errors and timeouts over runs."""
    return sum(run.result.errors for run in runs)


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of callrelay's as a ratio to a baseline of this run."""

    section: str
    measure: str
    baseline: str  # what the figure is compared with, and its value
    subject: str  # callrelay's value
    ratio: float | None  # None: not run
    target: str = ""
    met: bool | None = None
    errors: int = 0
    note: str = ""

    def cells(self) -> list[str]:
        """The row as table cells."""
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}x"
        met = {True: "yes", False: "**no**", None: "—"}[self.met]
        return [self.section, self.measure, self.baseline, self.subject, ratio, self.target,
                met, str(self.errors), self.note]


def ratio_row(section: str, measure: str, unit: str, base_label: str, base: Sequence[Run],
              subject: Sequence[Run], value: Callable[[Run], float], *, at_least: float | None =
              None, at_most: float | None = None, note: str = "", digits: int = 0) -> Row:
    """Compare the medians of `value` over two sets of interleaved runs."""
    b, s = median(base, value), median(subject, value)
    ratio = s / b if b else 0.0
    if at_least is not None:
        target, met = f"≥ {at_least:g}x", ratio >= at_least
    elif at_most is not None:
        target, met = f"≤ {at_most:g}x", ratio <= at_most
    else:
        target, met = "", None
    errors_seen = errors(base) + errors(subject)
    paired = [value(y) / value(x) for x, y in zip(base, subject, strict=False) if value(x)]
    if len(paired) > 1:
        spread = f"rounds {min(paired):.2f}-{max(paired):.2f}x"
        note = f"{note}; {spread}" if note else spread
    return Row(section, measure, f"{base_label} {b:.{digits}f} {unit}", f"{s:.{digits}f} {unit}",
               ratio, target, met if errors_seen == 0 or met is None else False,
               errors_seen, note)


HEADER = ["part", "measure", "baseline (same run)", "callrelay", "ratio", "target", "met",
          "errors", "notes"]


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def as_json(rows: Sequence[Row], runs: dict[str, list[Run]],
            machine: dict[str, Any]) -> dict[str, Any]:
    """Everything measured, for bench/results/."""
    return {"machine": machine, "rows": [asdict(row) for row in rows],
            "runs": {name: [asdict(run) for run in group] for name, group in runs.items()}}
