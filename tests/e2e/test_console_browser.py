"""The console in a real browser (Debian's chromium, driven by Playwright) against callrelay run
through the Procfile, with the sandbox's Twilio mock and a real backend for forwarding.

Set CALLRELAY_CONSOLE_SCREENSHOT=docs/console.png to save the README's screenshot from the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.calls import Step, phone_calls_sdk, sdk_calls_phone
from sandbox.devtools import ROOT, free_port
from sandbox.simulate import play
from tests.e2e.harness import Service
from tests.forwarding.support import SECRET, Backend, new_message_sid
from tests.support.browser import VIEWPORT, StaticSite, chromium, require_chromium
from tests.support.env import ACCOUNT_SID, AUTH_TOKEN, RELAY_TOKEN, make_env, sign

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {RELAY_TOKEN}"}
# Errors in the browser's console that mean the page is broken: a blocked inline script or
# style (CSP), or a script error. Failed requests (a refused form is a 403) are expected.
BROKEN = re.compile(r"Content Security Policy|Uncaught|TypeError|ReferenceError")


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = Backend()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory, twilio_server, backend) -> Iterator[Service]:
    require_chromium()  # skip (or fail in CI) before starting anything
    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    env = make_env(tmp, twilio_server, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   FORWARD_URL=backend.url, FORWARD_SECRET=SECRET, FORWARD_MAX_ATTEMPTS="1",
                   MESSAGE_LOG_CONTENT="true")
    with Service(env, workers=2, port=port, log_path=tmp / "callrelay.log") as running:
        yield running


@pytest.fixture(scope="module")
def browser(service) -> Iterator[Any]:
    with chromium() as running:
        yield running


@dataclass
class Tab:
    """A browser tab on the console, and what went wrong in its pages."""

    page: Any
    errors: list[str] = field(default_factory=list)

    def assert_no_broken_page(self) -> None:
        assert [e for e in self.errors if BROKEN.search(e)] == []


@pytest.fixture
def tab(browser, service, backend) -> Iterator[Tab]:
    backend.answer = lambda d: 204
    context = browser.new_context(viewport=VIEWPORT, base_url=service.url)
    context.set_default_timeout(20_000)
    opened = Tab(context.new_page())

    def watch(page: Any) -> None:
        page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(f"Uncaught {e}"))

    watch(opened.page)
    context.on("page", watch)
    yield opened
    context.close()


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def simulate(service: Service, steps: list[Step]) -> None:
    """Send the steps as Twilio would, signed, with the simulator's own code."""
    with requests.Session() as http:
        play(steps, service.url, service.url, AUTH_TOKEN, 0, http)


def sign_in(page: Any, token: str = RELAY_TOKEN) -> None:
    page.goto("/console/login")
    page.fill("#token", token)
    page.click("form.login button[type=submit]")


def sdk_sends(service: Service, call_sid: str, content: Any) -> str:
    """A message from the Voice SDK on `call_sid`, posted as Twilio's subscription does."""
    sid = new_message_sid()
    body = json.dumps({"ContentType": "application/json", "Content": json.dumps(content),
                       "SequenceNumber": 1, "CallSid": call_sid, "AccountSid": ACCOUNT_SID,
                       "Timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                       "Sid": sid}).encode()
    path = f"/twilio/messages?bodySHA256={hashlib.sha256(body).hexdigest()}"
    answer = requests.post(service.url + path, data=body, timeout=10, headers={
        "Content-Type": "application/json", "X-Twilio-Signature": sign(service.url + path, {})})
    assert answer.status_code == 204, answer.text
    return sid


def test_sign_in_watch_a_call_live_and_its_messages_both_ways(tab, service, twilio, backend):
    page = tab.page
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console$"))
    page.fill("#token", RELAY_TOKEN)
    page.click("form.login button[type=submit]")
    expect(page.locator("h1")).to_contain_text("Live calls")
    expect(page.locator("#no-calls")).to_be_visible()
    page.evaluate("window.sameDocument = true")  # a reload would forget it

    call = phone_calls_sdk(ACCOUNT_SID, identity="bob")  # a phone rings bob: SDK on the child
    simulate(service, call.answer)
    sdk_row = page.locator(f'#calls tr[data-leg="{call.sdk_sid}"]')
    expect(sdk_row).to_contain_text("in-progress")
    expect(sdk_row).to_contain_text("child")
    expect(sdk_row.locator(".badge.sdk")).to_have_text("SDK")
    expect(sdk_row).to_contain_text("bob")
    expect(page.locator(f'#calls tr[data-leg="{call.parent_sid}"]')).to_contain_text("parent")
    expect(page.locator("#call-count")).to_have_text("1")
    expect(page.locator("#live-status")).to_contain_text("live · updated")
    page.fill("#filter", "nobody")
    expect(sdk_row).to_have_count(0)
    expect(page.locator("#no-calls")).to_be_visible()
    page.fill("#filter", "BO")
    expect(sdk_row).to_be_visible()
    assert page.evaluate("window.sameDocument") is True

    # The call's page, in a second tab: a test message through /notify's code, then one by
    # curl and one from the SDK, each shown in the timeline as it happens.
    detail = page.context.new_page()
    detail.goto(f"/console/calls/{call.parent_sid}")
    detail.fill("#content", '{"offer": 42}')
    detail.click("form[action$='/message'] button[type=submit]")
    expect(detail.locator(".flash.ok")).to_contain_text(f"to {call.sdk_sid} (bob)")
    [sent] = twilio.messages
    assert (sent.call_sid, sent.content) == (call.sdk_sid, '{"offer": 42}')
    expect(detail.locator(f'#timeline li[data-sid="{sent.sid}"]')).to_contain_text("sent")
    detail.evaluate("window.sameDocument = true")
    by_curl = requests.post(service.url + "/notify", headers=AUTH, timeout=10,
                            json={"identity": "bob", "content": {"hello": "bob"}})
    assert by_curl.status_code == 201, by_curl.text
    kx = by_curl.json()["messages"][0]["sid"]
    expect(detail.locator(f'#timeline li[data-sid="{kx}"]')).to_contain_text("to SDK")
    from_sdk = sdk_sends(service, call.sdk_sid, {"accepted": True})
    backend.wait_for(lambda ds: any(d.id == f"msg_{from_sdk}" for d in ds))
    reply = detail.locator(f'#timeline li[data-sid="{from_sdk}"]')
    expect(reply).to_contain_text("from SDK")
    expect(reply.locator(".pill")).to_have_text("forwarded")
    expect(detail.locator("#timeline li")).to_have_count(3)
    assert detail.evaluate("window.sameDocument") is True
    screenshot(detail)
    detail.close()

    page.bring_to_front()
    simulate(service, call.hangup)
    ended = page.locator(f'#ended tr[data-leg="{call.sdk_sid}"]')
    expect(ended).to_contain_text("completed")
    expect(page.locator(f'#calls tr[data-leg="{call.sdk_sid}"]')).to_have_count(0)
    expect(page.locator("#ended-section h2")).to_have_text("Ended while you watched")
    assert page.evaluate("window.sameDocument") is True
    cookie = next(c for c in page.context.cookies() if c["name"] == "callrelay_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict",
                                                                        "/console")
    tab.assert_no_broken_page()


def screenshot(page: Any) -> None:
    """Save the call page for the README when asked to (CALLRELAY_CONSOLE_SCREENSHOT)."""
    target = os.environ.get("CALLRELAY_CONSOLE_SCREENSHOT")
    if target:
        path = Path(target) if Path(target).is_absolute() else ROOT / target
        page.screenshot(path=str(path), full_page=True)


def test_retry_and_delete_a_dead_letter(tab, service, backend):
    page = tab.page
    sign_in(page)
    backend.answer = lambda d: 500  # FORWARD_MAX_ATTEMPTS=1: one refusal buries an event
    dead = []
    for note in ("retry me", "delete me"):
        page.goto("/console/dead")
        page.fill("#note", note)
        page.click("form[action$='/test-event'] button[type=submit]")
        notice = page.locator(".flash.ok").inner_text()
        dead.append(re.search(r"test_[0-9a-f]{32}", notice).group())
    for event_id in dead:
        listed_after_reloads(page, "/console/dead", f'tr[data-event="{event_id}"]')

    backend.answer = lambda d: 204
    page.locator(f'tr[data-event="{dead[0]}"] button', has_text="Retry").click()
    expect(page.locator(".flash.ok")).to_have_text(f"{dead[0]} queued again.")
    delivered = backend.wait_for(lambda ds: any(d.id == dead[0] and d.status == 204
                                                for d in ds))
    assert next(d for d in delivered if d.id == dead[0]).verified()["data"] == {
        "note": "retry me"}
    expect(page.locator(f'tr[data-event="{dead[0]}"]')).to_have_count(0)

    page.once("dialog", lambda dialog: dialog.accept())  # "Delete … for good?"
    page.locator(f'tr[data-event="{dead[1]}"] button', has_text="Delete").click()
    expect(page.locator(".flash.ok")).to_have_text(f"{dead[1]} deleted.")
    expect(page.locator(f'tr[data-event="{dead[1]}"]')).to_have_count(0)
    tab.assert_no_broken_page()


def listed_after_reloads(page: Any, path: str, selector: str, timeout_s: float = 20.0) -> None:
    """Reload `path` until `selector` is on it (delivery happens in the background)."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.goto(path)
        if page.locator(selector).count():
            return
        assert time.monotonic() < deadline, f"{selector} never listed on {path}"
        time.sleep(0.2)


def test_a_wrong_token_a_missing_csrf_token_and_cross_site_posts_are_refused(tab, service,
                                                                              twilio):
    page = tab.page
    sign_in(page, token="not-one-of-the-relay-tokens")
    expect(page.locator(".flash.error")).to_contain_text("not one of the relay tokens")
    expect(page).to_have_url(re.compile(r"/console/login"))
    assert [c for c in page.context.cookies() if c["name"] == "callrelay_console"] == []

    sign_in(page)
    call = sdk_calls_phone(ACCOUNT_SID)
    simulate(service, call.answer)
    page.goto(f"/console/calls/{call.parent_sid}")
    form = page.locator("form[action$='/message']")
    csrf = form.locator("input[name=csrf_token]").input_value()
    form.locator("input[name=csrf_token]").evaluate("input => input.remove()")
    form.locator("button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("That form was refused")
    expect(page.locator("main")).to_contain_text("form token")

    action = f"{service.url}/console/calls/{call.parent_sid}/message"
    site = StaticSite(lambda: (
        f'<form method="post" action="{action}"><input name="csrf_token" value="{csrf}">'
        '<input name="content" value="{}"><button type="submit">Win a prize</button></form>'))
    try:
        # Another port on the same host: the same site, so the session cookie goes along, with
        # the right CSRF token even; the origin check refuses it.
        attacker = page.context.new_page()
        attacker.goto(f"http://127.0.0.1:{site.port}/")
        attacker.click("button")
        expect(attacker.locator("h1")).to_have_text("That form was refused")
        expect(attacker.locator("main")).to_contain_text("another site")
        # Another site altogether: refused too (and SameSite=Strict kept the cookie home).
        attacker.goto(f"http://localhost:{site.port}/")
        attacker.click("button")
        expect(attacker.locator("h1")).to_have_text("That form was refused")
    finally:
        site.stop()
    assert twilio.messages == []
    page.goto(f"/console/calls/{call.parent_sid}")  # still signed in, nothing sent
    expect(page.locator("#legs")).to_contain_text(call.sdk_sid)
    simulate(service, call.hangup)
    tab.assert_no_broken_page()
