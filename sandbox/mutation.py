"""Mutation testing of the rule modules: run mutmut, count its verdicts per module, apply the gate.

`scripts/mutation [module.py …]` runs this; docs/mutation.md says what the figures mean. A
mutant counts as killed when a test failed (or the suite hung past mutmut's timeout: a mutant
that makes the code loop for ever is caught too); one that no test covers counts as survived.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.devtools import ROOT

GATE_TOTAL = 90.0
GATE_EACH = 80.0
# mutmut's exit codes (its `stats` module): what each verdict counts as here.
KILLED = {1, 3, 37}                    # a test failed; pytest crashed; the type check failed
TIMED_OUT = {36, 24, -24, 152, 255}
SURVIVED = {0, 5, 33}                  # every test passed; no test covers the mutant


@dataclass(frozen=True)
class Tally:
    """Verdicts on one module's mutants (or on several modules together)."""

    killed: int = 0
    timed_out: int = 0
    survived: int = 0
    other: int = 0  # not checked, skipped, suspicious, crashed: counted, never as killed

    @property
    def total(self) -> int:
        """Every mutant, whatever its verdict."""
        return self.killed + self.timed_out + self.survived + self.other

    @property
    def percent(self) -> float:
        """Share of mutants caught (killed or timed out), in percent; 0 without mutants."""
        return 100.0 * (self.killed + self.timed_out) / self.total if self.total else 0.0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.killed + other.killed, self.timed_out + other.timed_out,
                     self.survived + other.survived, self.other + other.other)


def tally(exit_codes: Iterable[int | None]) -> Tally:
    """Count mutmut's exit codes as killed, timed out, survived or other."""
    counts = {"killed": 0, "timed_out": 0, "survived": 0, "other": 0}
    for code in exit_codes:
        key = ("killed" if code in KILLED else "timed_out" if code in TIMED_OUT
               else "survived" if code in SURVIVED else "other")
        counts[key] += 1
    return Tally(**counts)


def configured_modules(root: Path = ROOT) -> list[str]:
    """The modules pyproject.toml's [tool.mutmut] mutates, as paths from the root."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]
    found = {str(path.relative_to(root)) for source in config["source_paths"]
             for path in (root / source).rglob("*.py")}
    return sorted(path for path in found if not path.endswith("__init__.py")
                  and any(fnmatch.fnmatch(path, pattern) for pattern in config["only_mutate"]))


def mutant_glob(module: str) -> str:
    """mutmut's name pattern for a module's mutants: its dotted name and `.*`."""
    return module.removesuffix(".py").replace("/", ".") + ".*"


def read_verdicts(module: str, root: Path = ROOT) -> dict[str, int | None]:
    """Each mutant of `module` with mutmut's exit code (None: not checked yet)."""
    meta = root / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    return codes


def gate_failures(tallies: dict[str, Tally], each: float, total: float) -> list[str]:
    """Why the gate fails (nothing when it passes)."""
    failures = [f"{module}: {t.percent:.1f} % < {each:g} %"
                for module, t in tallies.items() if t.percent < each]
    together = sum(tallies.values(), Tally())
    if together.percent < total:
        failures.append(f"together: {together.percent:.1f} % < {total:g} %")
    return failures


def report(tallies: dict[str, Tally]) -> str:
    """The table scripts/mutation prints (and docs/mutation.md holds)."""
    width = max([len("together"), *map(len, tallies)])
    lines = [f"{'module':<{width}}  killed  timed out  survived  other  total  kill %"]
    rows = [*tallies.items(), ("together", sum(tallies.values(), Tally()))]
    for module, t in rows:
        lines.append(f"{module:<{width}}  {t.killed:6}  {t.timed_out:9}  {t.survived:8}  "
                     f"{t.other:5}  {t.total:5}  {t.percent:5.1f}")
    return "\n".join(lines)


def markdown(tallies: dict[str, Tally]) -> str:
    """The same table in Markdown, as docs/mutation.md holds it."""
    lines = ["| module | killed | timed out | survived | total | kill % |",
             "|---|---:|---:|---:|---:|---:|"]
    rows = [*((f"`{m}`", t) for m, t in tallies.items()),
            ("**together**", sum(tallies.values(), Tally()))]
    for name, t in rows:
        lines.append(f"| {name} | {t.killed} | {t.timed_out} | {t.survived + t.other} | "
                     f"{t.total} | {t.percent:.1f} |")
    return "\n".join(lines)


def survivors(module: str, root: Path = ROOT) -> list[str]:
    """The names of `module`'s mutants that survived (for `mutmut show NAME`)."""
    return sorted(name for name, code in read_verdicts(module, root).items()
                  if code in SURVIVED)


def run_mutmut(names: list[str], max_children: int) -> int:
    """Run mutmut on the mutants `names` match (every one re-tested); its exit status.

    Its progress spinner goes to a terminal; elsewhere (CI) its output goes to
    mutants/mutmut-run.log, whose end is shown when the run fails.
    """
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", str(max_children), *names]
    if sys.stdout.isatty():
        return subprocess.run(command, cwd=ROOT, check=False).returncode
    log = ROOT / "mutants" / "mutmut-run.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        returncode = subprocess.run(command, cwd=ROOT, check=False, stdout=out,
                                    stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"scripts/mutation: mutmut run failed ({returncode})", file=sys.stderr)
    return returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__)
    parser.add_argument("modules", nargs="*", help="paths such as services/legs/rules.py "
                        "(default: every module pyproject.toml's [tool.mutmut] names)")
    parser.add_argument("--gate-total", type=float,
                        default=float(os.environ.get("MUTATION_GATE_TOTAL", GATE_TOTAL)),
                        help="fail under this kill %% over the modules together "
                             "(MUTATION_GATE_TOTAL, default %(default)s)")
    parser.add_argument("--gate-each", type=float,
                        default=float(os.environ.get("MUTATION_GATE_EACH", GATE_EACH)),
                        help="fail under this kill %% in any one module "
                             "(MUTATION_GATE_EACH, default %(default)s)")
    parser.add_argument("--max-children", type=int,
                        default=int(os.environ.get("MUTATION_MAX_CHILDREN", 2)),
                        help="mutmut's parallel test runs (MUTATION_MAX_CHILDREN, default 2)")
    parser.add_argument("--report-only", action="store_true",
                        help="print the last run's results without running mutmut")
    parser.add_argument("--retest-survivors", action="store_true",
                        help="re-test only the last run's survivors (after adding tests: a "
                             "killed mutant stays killed by more tests)")
    parser.add_argument("--survivors", action="store_true",
                        help="also list the surviving mutants' names")
    parser.add_argument("--markdown", action="store_true",
                        help="print the table in Markdown (docs/mutation.md)")
    args = parser.parse_args(argv)
    known = configured_modules()
    modules = args.modules or known
    unknown = [m for m in modules if m not in known]
    if unknown:
        parser.error(f"not configured for mutation in pyproject.toml: {', '.join(unknown)}")
    names = ([name for module in modules for name in survivors(module)]
             if args.retest_survivors else [mutant_glob(module) for module in modules])
    if not args.report_only and names:
        returncode = run_mutmut(names, args.max_children)
        if returncode != 0:
            return returncode
    tallies = {m: tally(read_verdicts(m).values()) for m in modules}
    print(markdown(tallies) if args.markdown else report(tallies))
    if args.survivors:
        for module in modules:
            for name in survivors(module):
                print(f"survived: {name}")
    failures = gate_failures(tallies, args.gate_each, args.gate_total)
    for failure in failures:
        print(f"scripts/mutation: under the gate: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
