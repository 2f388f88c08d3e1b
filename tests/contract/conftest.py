"""Prism started once per session on the vendored spec; a recording proxy and a gateway per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from config.settings import Settings
from sandbox.devtools import free_port
from services.twilio.rest import TwilioRestGateway
from tests.contract.prism import Prism, RecordingProxy
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, RELAY_TOKEN


@pytest.fixture(scope="session")
def prism_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    # Prism is slow to start on a busy machine; CI may allow it longer.
    timeout = float(os.environ.get("CALLRELAY_PRISM_START_TIMEOUT_S", "60"))
    server = Prism(free_port(), log).start(timeout_s=timeout)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prism(prism_server: Prism) -> Iterator[RecordingProxy]:
    """A proxy to Prism that records this test's exchanges."""
    with RecordingProxy(prism_server.port) as proxy:
        yield proxy


@pytest.fixture
def gateway(prism: RecordingProxy) -> TwilioRestGateway:
    """callrelay's real Twilio adapter, built from Settings, pointed at Prism (via the proxy)."""
    return TwilioRestGateway(Settings.from_env({
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": RELAY_TOKEN, "TWILIO_API_BASE_URL": prism.base_url,
        "TWILIO_TIMEOUT_S": "10", "NOTIFY_DEADLINE_S": "20"}))
