"""sandbox.simulate against the Procfile's callrelay plays what its TwiML says: the child leg it
dials, or a clear failure when it dials nothing ("verify a deployment" then fails)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
import requests

from sandbox.devtools import RUNTIME_PYTHON, free_port
from sandbox.twilio_mock import TwilioMock
from tests.e2e.harness import Service
from tests.support.env import RELAY_TOKEN, make_env, sandbox_env

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}
SID = r"(CA[0-9a-f]{32})"


def _service(tmp_path_factory, twilio: TwilioMock, **env: str) -> Iterator[Service]:
    port = free_port()
    folder = tmp_path_factory.mktemp("callrelay")
    with Service(make_env(folder, twilio, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **env),
                 workers=1, port=port, log_path=folder / "callrelay.log") as service:
        yield service


@pytest.fixture(scope="module")
def dialling(tmp_path_factory, twilio_server) -> Iterator[Service]:
    """TWILIO_CALLER_ID +15005550001 (so DIAL_ALLOW is +1), INBOUND_CLIENT_IDENTITY bob."""
    yield from _service(tmp_path_factory, twilio_server)


@pytest.fixture(scope="module")
def no_caller_id(tmp_path_factory, twilio_server) -> Iterator[Service]:
    yield from _service(tmp_path_factory, twilio_server, TWILIO_CALLER_ID="")


@pytest.fixture(scope="module")
def uk_only(tmp_path_factory, twilio_server) -> Iterator[Service]:
    yield from _service(tmp_path_factory, twilio_server, DIAL_ALLOW="+44")


def simulate(service: Service, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RUNTIME_PYTHON), "-m", "sandbox.simulate", "--pause", "0", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=sandbox_env(PUBLIC_BASE_URL=service.url))


def legs(service: Service, sid: str) -> dict[str, dict]:
    call = requests.get(f"{service.url}/calls/{sid}", headers=AUTH, timeout=10).json()
    return {leg["leg"]: leg for leg in call["legs"]}


@pytest.mark.parametrize("args, child_to, sdk_leg", [
    (["--scenario", "sdk-to-phone", "--to", "+14155552671"], "+14155552671", "parent"),
    (["--scenario", "sdk-to-sdk"], "client:bob", "parent"),
    # A phone calling in rings whom the TwiML names: INBOUND_CLIENT_IDENTITY.
    (["--scenario", "phone-to-sdk"], "client:bob", "child"),
])
def test_the_child_leg_is_what_the_twiml_dials(dialling, tmp_path, args, child_to, sdk_leg):
    run = simulate(dialling, tmp_path, *args)
    assert run.returncode == 0, run.stdout + run.stderr
    parent = re.search(rf"^parent\s+{SID}$", run.stdout, re.M).group(1)
    child = re.search(rf"^child\s+{SID}$", run.stdout, re.M).group(1)
    found = legs(dialling, parent)
    assert found["child"]["call_sid"] == child and found["child"]["to"] == child_to
    assert found[sdk_leg]["sdk"] is True
    assert {leg["status"] for leg in found.values()} == {"completed"}


def test_a_client_the_twiml_does_not_ring_fails_the_simulation(dialling, tmp_path):
    run = simulate(dialling, tmp_path, "--scenario", "phone-to-sdk", "--identity", "carol")
    assert run.returncode == 1
    assert "callrelay's TwiML rings client:bob, not client:carol" in run.stderr


@pytest.mark.parametrize("service_name, args, cause", [
    ("no_caller_id", [], "TWILIO_CALLER_ID"),
    ("uk_only", ["--to", "+14155552671"], "DIAL_ALLOW"),
])
def test_a_refused_destination_fails_the_simulation_and_says_why(request, tmp_path,
                                                                  service_name, args, cause):
    service = request.getfixturevalue(service_name)
    run = simulate(service, tmp_path, "--scenario", "sdk-to-phone", *args)
    assert run.returncode == 1, run.stdout
    assert "callrelay's TwiML dials nothing: says \"This call cannot be connected. Goodbye.\" " \
           "and hangs up" in run.stdout
    (line,) = run.stderr.splitlines()
    assert line.startswith("simulation failed: callrelay's TwiML dials nothing for "
                           "client:alice calling +14155552671")
    assert cause in line
    # No child leg was played, and the caller's leg ended as Twilio would report it.
    parent = re.search(rf"200\s+/twilio/voice\s+{SID}", run.stdout).group(1)
    assert {leg: found["status"] for leg, found in legs(service, parent).items()} \
        == {"parent": "completed"}


def test_a_number_the_policy_allows_connects(uk_only, tmp_path):
    run = simulate(uk_only, tmp_path, "--scenario", "sdk-to-phone", "--to", "+442079460000")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "callrelay's TwiML dials <Number>+442079460000</Number>" in run.stdout
