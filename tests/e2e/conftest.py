"""Every e2e test runs callrelay as deployed: from the venv that requirements.txt alone builds."""

from __future__ import annotations

import pytest

from sandbox.devtools import ensure_runtime_venv


@pytest.fixture(scope="session", autouse=True)
def runtime_venv() -> None:
    """Build (or check) .venv from requirements.txt before any e2e test starts the service."""
    ensure_runtime_venv()
