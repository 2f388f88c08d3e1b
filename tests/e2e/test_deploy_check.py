"""scripts/deploy-check fails when a runtime dependency is missing from requirements.txt: the
defect that once crashed every deploy at boot (gunicorn's gevent worker imports `packaging`,
which plain `gunicorn` does not install) is caught before it ships."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.devtools import ROOT

pytestmark = pytest.mark.e2e


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
                           *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def scratch_clone(dest: Path) -> Path:
    """A clone of this repository at HEAD with the working tree's changes committed on it."""
    _git("clone", "--quiet", str(ROOT), str(dest), cwd=ROOT)
    _git("checkout", "--quiet", "-B", "scratch", _git("rev-parse", "HEAD", cwd=ROOT).strip(),
         cwd=dest)
    changed = _git("diff", "--name-only", "-z", "HEAD", cwd=ROOT).split("\0")
    untracked = _git("ls-files", "--others", "--exclude-standard", "-z", cwd=ROOT).split("\0")
    for name in filter(None, changed + untracked):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
        else:
            (dest / name).unlink(missing_ok=True)
    _git("add", "-A", cwd=dest)
    _git("commit", "--quiet", "--allow-empty", "-m", "the working tree", cwd=dest)
    return dest


def test_a_runtime_dependency_missing_from_the_lock_fails_the_deploy_check(tmp_path):
    repo = scratch_clone(tmp_path / "repo")
    # The mistake as it was made: plain gunicorn, and no `packaging` in the lock.
    source = (repo / "requirements.in").read_text()
    assert "gunicorn[gevent]" in source
    (repo / "requirements.in").write_text(source.replace("gunicorn[gevent]", "gunicorn"))
    lock = (repo / "requirements.txt").read_text()
    without = re.sub(r"^packaging==.*\n(?:^ +.*\n)*", "", lock, flags=re.M)
    assert "packaging==" in lock and "packaging==" not in without
    assert re.search(r"^gunicorn==", without, re.M)
    (repo / "requirements.txt").write_text(without)
    _git("commit", "--quiet", "-am", "gunicorn without its gevent extra", cwd=repo)

    run = subprocess.run([str(ROOT / "scripts" / "deploy-check"), "--repo", str(repo)],
                         capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "deploy check (sqlite): FAILED" in output
    assert "No module named 'packaging'" in output
