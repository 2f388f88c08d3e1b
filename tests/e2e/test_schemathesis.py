"""schemathesis against the running service: no 5xx, no answer outside the OpenAPI document."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from sandbox.conference import conference_call
from sandbox.devtools import free_port
from tests.e2e.harness import Service
from tests.support.env import ACCOUNT_SID, RELAY_TOKEN, make_env, sign

pytestmark = pytest.mark.e2e


def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path, twilio):
    port = free_port()
    env = make_env(tmp_path, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with Service(env, workers=2, port=port, log_path=tmp_path / "callrelay.log") as service:
        # Live calls and a conference (the path parameter's example), so that the listing and
        # lookups return real legs to validate.
        for call in (sdk_calls_phone(ACCOUNT_SID), phone_calls_sdk(ACCOUNT_SID),
                     conference_call(ACCOUNT_SID, name="standup")):
            for step in call.answer:
                url = service.url + step.path
                answer = requests.post(url, data=step.params, timeout=10,
                                       headers={"X-Twilio-Signature": sign(url, step.params)})
                assert answer.status_code in (200, 204), (step.note, answer.status_code,
                                                          answer.text)
        cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert cli, "schemathesis is not installed (requirements-dev.txt)"
        run = subprocess.run(
            [cli, "run", f"{service.url}/openapi.json",
             "--header", f"Authorization: Bearer {RELAY_TOKEN}",
             "--checks", "all",
             # Valid requests for calls that do not exist rightly answer 404/409.
             "--exclude-checks", "positive_data_acceptance",
             "--max-examples", "60", "--seed", "20261127",
             "--report-dir", str(tmp_path / "schemathesis")],
            capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    log = (tmp_path / "callrelay.log").read_text()
    assert "Traceback" not in log
