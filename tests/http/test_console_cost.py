"""What the console costs a Twilio callback: nothing. It reads the stores only when a page or
its poll asks; a webhook makes the same store calls whether the console is on or off."""

from __future__ import annotations

from typing import Any

from app import create_app
from config.settings import Settings
from sandbox.calls import phone_calls_sdk, sdk_calls_phone
from services.store.open import Stores, open_stores
from tests.support.console import Console
from tests.support.env import ACCOUNT_SID, make_env
from tests.support.relay import Relay


class Recording:
    """Passes every call through to a store, and writes its name down."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return attr(*args, **kwargs)

        return recorded


def store_calls_of_callbacks(tmp_path, twilio, console: str, watch: bool) -> list[str]:
    """The store calls that two calls' webhooks make, with the console on or off."""
    settings = Settings.from_env(make_env(tmp_path, twilio, CONSOLE_ENABLED=console))
    stores = open_stores(settings.store_url, settings.retention)
    calls: list[str] = []
    app = create_app(settings, store=Stores(Recording(stores.legs, calls),
                                            Recording(stores.outbox, calls),
                                            Recording(stores.conferences, calls),
                                            Recording(stores.history, calls)))
    relay = Relay(app.test_client())
    if watch:  # someone is signed in, with the calls page open
        browser = Console(app.test_client())
        browser.sign_in()
        browser.get("/console")
    calls.clear()
    for call in (sdk_calls_phone(ACCOUNT_SID), phone_calls_sdk(ACCOUNT_SID)):
        relay.play(call.steps)
    stores.close()
    return calls


def test_a_callback_makes_the_same_store_calls_with_the_console_on_or_off(tmp_path, twilio):
    off = store_calls_of_callbacks(tmp_path / "off", twilio, "false", watch=False)
    on = store_calls_of_callbacks(tmp_path / "on", twilio, "true", watch=False)
    watched = store_calls_of_callbacks(tmp_path / "watched", twilio, "true", watch=True)
    # Per call: one write per webhook, and the history told when the parent leg ended.
    assert off == (["apply"] * 6 + ["call_ended"]) * 2
    assert on == off and watched == off
