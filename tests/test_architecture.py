"""The layout's rules, checked on the import graph: no cycles, dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "config", "services", "web", "sandbox", "bench")
MAX_LINES = 300


def _modules() -> dict[str, Path]:
    found = {"app": ROOT / "app.py"}
    for package in PACKAGES[1:]:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth in the file (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _project_edges() -> dict[str, set[str]]:
    return {name: {imported for imported in _imports(path) if imported in MODULES
                   and imported != name}
            for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph`, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    # Package __init__ modules are docstrings only, so edges between modules are the whole story.
    cycle = _cycle(_project_edges())
    assert cycle is None, " -> ".join(cycle or [])


def _services() -> dict[str, Path]:
    return {name: path for name, path in MODULES.items() if name.startswith("services")}


@pytest.mark.parametrize("forbidden", ["flask", "werkzeug"])
def test_services_do_not_import_the_web_framework(forbidden):
    offenders = [name for name, path in _services().items()
                 if any(i == forbidden or i.startswith(forbidden + ".") for i in _imports(path))]
    assert offenders == []


def test_only_the_rest_adapter_imports_twilio_rest():
    # bench/baselines are quickstart-style stand-ins measured against, not callrelay's code.
    offenders = sorted(name for name, path in MODULES.items()
                       if not name.startswith("bench.baselines") and any(i == "twilio.rest" or i.startswith("twilio.rest.")
                              for i in _imports(path)))
    assert offenders == ["services.twilio.rest"]


def test_ports_import_no_adapter():
    ports = ["services.store.legs", "services.store.conferences", "services.store.outbox",
             "services.store.history",
             "services.twilio.port"]
    adapters = ("services.store.sqlite", "services.store.redis", "services.store.postgres",
                "services.twilio.rest")
    for port in ports:
        assert not [i for i in _imports(MODULES[port]) if i.startswith(adapters)], port


def test_blueprints_do_not_import_each_other():
    blueprints = {name for name in MODULES if name.startswith("web.")
                  and "Blueprint(" in MODULES[name].read_text()}
    for name in blueprints:
        assert not (_imports(MODULES[name]) & (blueprints - {name})), name


def test_package_inits_hold_no_code():
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            body = ast.parse(path.read_text()).body
            assert all(isinstance(n, ast.Expr) for n in body), f"{name} should be a docstring"


def test_no_module_outside_tests_is_over_300_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_tests_share_helpers_through_support_modules_not_conftest():
    tests = ROOT / "tests"
    offenders = sorted(str(path.relative_to(ROOT)) for path in tests.rglob("*.py")
                       if any(i.endswith("conftest") or ".conftest." in i
                              for i in _imports(path)))
    assert offenders == []


def test_bench_does_not_import_tests():
    offenders = sorted(name for name, path in MODULES.items() if name.startswith("bench")
                       and any(i == "tests" or i.startswith("tests.") for i in _imports(path)))
    assert offenders == []


def test_gunicorn_s_master_does_not_import_psycopg():
    # psycopg picks how it waits on sockets when it is imported: in the master (before the
    # gevent worker patches them) it would pick waits that stop a worker on every query.
    edges, seen = _project_edges(), set()
    todo = ["config.gunicorn.conf"]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    offenders = sorted(name for name in seen if any(
        i.split(".")[0] in ("psycopg", "psycopg_pool") for i in _imports(MODULES[name])))
    assert "config.settings" in seen and offenders == []
