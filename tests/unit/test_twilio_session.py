"""The Twilio adapter's HTTP session: a pool as large as the requests in flight, environment read once."""

from __future__ import annotations

import pytest

from config.settings import Settings
from services.twilio.rest import POOL_SIZE, TwilioRestGateway
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, RELAY_TOKEN


def gateway(base_url: str = "https://api.twilio.com") -> TwilioRestGateway:
    return TwilioRestGateway(Settings.from_env({
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "RELAY_API_TOKENS": RELAY_TOKEN, "TWILIO_API_BASE_URL": base_url}))


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy", "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_a_proxy_in_the_environment_at_start_is_used() -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        session = gateway().http.session
    assert session is not None
    assert session.proxies.get("https") == "http://proxy.example:3128"
    assert session.trust_env is False  # not re-read from os.environ on every call


def test_no_proxy_for_twilio_is_honoured() -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
        env.setenv("NO_PROXY", "api.twilio.com")
        session = gateway().http.session
    assert session is not None
    assert "https" not in session.proxies


def test_a_ca_bundle_in_the_environment_is_used(tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        session = gateway().http.session
    assert session is not None
    assert session.verify == str(bundle)


@pytest.mark.parametrize("base_url", ["https://api.twilio.com", "http://127.0.0.1:4010"])
def test_the_pool_keeps_a_connection_for_every_thread(base_url: str) -> None:
    session = gateway(base_url).http.session
    assert session is not None
    adapter = session.get_adapter(base_url)
    assert adapter._pool_maxsize == POOL_SIZE  # type: ignore[attr-defined]
