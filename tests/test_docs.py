"""The README's module map names what is in the tree, and the tree has nothing it leaves out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_map() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## How it fits together")
    return readme[start:readme.index("\n## ", start + 1)]


def test_every_path_in_the_module_map_exists():
    named = re.findall(r"^- `([^`]+)`", _module_map(), re.M)
    assert named, "the module map lists no paths"
    assert [path for path in named if not (ROOT / path).exists()] == []


def test_every_services_package_is_in_the_module_map():
    named = set(re.findall(r"^- `([^`]+)`", _module_map(), re.M))
    packages = {f"services/{p.name}/" for p in (ROOT / "services").iterdir()
                if (p / "__init__.py").exists()}
    assert packages - named == set()
