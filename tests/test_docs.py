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


_PATH = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.(?:py|md|json|yml|yaml|txt|in))\b")
_NAMING_FILES = ["README.md", "BENCHMARKS.md", "docs/*.md", "config/*.py", "app.json",
                 "render.yaml", "scripts/*", "sandbox/*.py", ".env.example"]


def test_every_file_the_docs_and_config_comments_name_exists():
    missing = []
    for pattern in _NAMING_FILES:
        for path in sorted(ROOT.glob(pattern)):
            for named in _PATH.findall(path.read_text()):
                if not (ROOT / named).exists() and not (path.parent / named).exists():
                    missing.append(f"{path.relative_to(ROOT)}: {named}")
    assert missing == []
