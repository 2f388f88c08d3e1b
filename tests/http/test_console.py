"""The console through Flask's test client: sign-in, the session cookie, CSRF and origin checks,
security headers, CONSOLE_ENABLED, and the test message sent through /notify's use case."""

import logging
import re
from html.parser import HTMLParser

import pytest

from app import create_app
from config.settings import Settings
from sandbox.calls import new_call_sid, phone_calls_sdk, sdk_calls_phone
from sandbox.conference import conference_call
from services.legs.model import LegEvent
from tests.support.console import Console, csrf_in, set_cookies
from tests.support.env import ACCOUNT_SID, OLD_RELAY_TOKEN, PUBLIC_BASE, RELAY_TOKEN, make_env
from tests.support.relay import Relay

PAGES = ["/console", "/console/conferences", "/console/dead",
         "/console/calls/CA" + "0" * 32]


@pytest.fixture
def console(client) -> Console:
    return Console(client)


@pytest.fixture
def signed_in(console) -> Console:
    assert console.sign_in().status_code == 303
    return console


def build(tmp_path, twilio, **overrides):
    app = create_app(Settings.from_env(make_env(tmp_path, twilio, **overrides)))
    return app


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_a_page_redirects_to_sign_in(console, path):
    answer = console.get(path)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/console/login?next={path}"


def test_without_a_session_the_polled_json_is_401_and_a_form_changes_nothing(console, relay,
                                                                             twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    assert console.get("/console/api/calls").status_code == 401
    answer = console.post(f"/console/calls/{call.sdk_sid}/message", {"content": "{}"},
                          csrf="forged")
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/console/login")
    assert twilio.messages == []


def test_sign_in_sets_a_signed_httponly_strict_cookie_secure_behind_https(console):
    answer = console.sign_in(next_path="/console/dead")
    assert answer.status_code == 303 and answer.headers["Location"] == "/console/dead"
    cookie = set_cookies(answer)["callrelay_console"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/console", "Max-Age=43200"):
        assert attribute in cookie.split("; "), cookie
    assert RELAY_TOKEN not in cookie
    assert console.get("/console").status_code == 200


def test_the_cookie_is_secure_only_behind_https(tmp_path, twilio):
    app = build(tmp_path, twilio, PUBLIC_BASE_URL="")  # the origin comes from X-Forwarded-*
    plain = Console(app.test_client(), base="http://relay.example.com")
    cookie = set_cookies(plain.sign_in())["callrelay_console"]
    assert "Secure" not in cookie.split("; ")
    proxied = Console(app.test_client(), base="http://relay.example.com")
    form = proxied.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    answer = proxied.client.post(
        "/console/login", base_url=proxied.base,
        data={"csrf_token": csrf_in(form), "token": RELAY_TOKEN},
        headers={"X-Forwarded-Proto": "https", "Origin": "https://relay.example.com"})
    assert answer.status_code == 303
    assert "Secure" in set_cookies(answer)["callrelay_console"].split("; ")
    app.extensions["callrelay.store"].close()


def test_a_wrong_token_is_refused_and_opens_no_session(console):
    answer = console.sign_in(token="not-a-relay-token-at-all")
    assert answer.status_code == 401
    assert "not one of the relay tokens" in answer.get_data(as_text=True)
    assert "callrelay_console" not in set_cookies(answer)
    assert console.get("/console").status_code == 303


def test_sign_in_needs_the_forms_csrf_token(console):
    console.get("/console/login")  # the browser holds the form's nonce cookie
    for token in (None, "0" * 64):
        data = {"token": RELAY_TOKEN} | ({"csrf_token": token} if token else {})
        answer = console.client.post("/console/login", data=data, base_url=PUBLIC_BASE)
        assert answer.status_code == 403
        assert "callrelay_console" not in set_cookies(answer)


def test_next_never_leaves_the_console(console):
    answer = console.sign_in(next_path="https://evil.example/console")
    assert answer.headers["Location"] == "/console"


def test_a_tampered_cookie_is_no_session(signed_in):
    cookie = signed_in.client.get_cookie("callrelay_console", domain="relay.example.com",
                                         path="/console")
    payload, stamp, mac = cookie.value.split(".")
    signed_in.client.set_cookie("callrelay_console", f"{payload}x.{stamp}.{mac}",
                                domain="relay.example.com", path="/console")
    assert signed_in.get("/console").status_code == 303


def test_a_rotated_out_token_ends_its_sessions(tmp_path, twilio):
    before = build(tmp_path, twilio)
    old, current = Console(before.test_client()), Console(before.test_client())
    assert old.sign_in(token=OLD_RELAY_TOKEN).status_code == 303
    assert current.sign_in(token=RELAY_TOKEN).status_code == 303
    after = build(tmp_path, twilio, RELAY_API_TOKENS=RELAY_TOKEN)  # the old one rotated out
    for person, expected in ((old, 303), (current, 200)):
        cookie = person.client.get_cookie("callrelay_console", domain="relay.example.com",
                                          path="/console")
        browser = Console(after.test_client())
        browser.client.set_cookie("callrelay_console", cookie.value, domain="relay.example.com",
                                  path="/console")
        assert browser.get("/console").status_code == expected
    for app in (before, after):
        app.extensions["callrelay.store"].close()


def test_a_form_without_the_sessions_csrf_token_is_refused(signed_in, relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    path = f"/console/calls/{call.sdk_sid}/message"
    for csrf in (None, "another-sessions-token"):
        answer = signed_in.post(path, {"content": '{"x": 1}'}, csrf=csrf)
        assert answer.status_code == 403, csrf
        assert answer.mimetype == "text/html"
        assert "Nothing was changed" in answer.get_data(as_text=True)
    assert twilio.messages == []


def test_a_refused_form_is_a_json_error_for_anything_but_a_browser(signed_in, relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    path = f"/console/calls/{call.sdk_sid}/message"
    answer = signed_in.post(path, {"content": "{}"}, csrf=None,
                            headers={"Accept": "application/json"})
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "csrf_refused"
    answer = signed_in.post(path, {"content": "{}"}, origin=None,
                            headers={"Accept": "*/*", "Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert answer.get_json()["error"]["code"] == "cross_origin_refused"
    assert twilio.messages == []


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "http://relay.example.com"},  # the right host, not the right scheme
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port or subdomain of the same site
])
def test_a_cross_origin_form_is_refused_even_with_the_csrf_token(signed_in, relay, twilio,
                                                                 headers):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    answer = signed_in.post(f"/console/calls/{call.sdk_sid}/message", {"content": "{}"},
                            origin=None, headers=headers)
    assert answer.status_code == 403
    assert "another site" in answer.get_data(as_text=True)
    assert twilio.messages == []


def test_a_cross_origin_sign_in_is_refused(console):
    form = console.get("/console/login")
    answer = console.client.post("/console/login", base_url=PUBLIC_BASE,
                                 data={"csrf_token": csrf_in(form), "token": RELAY_TOKEN},
                                 headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403 and "callrelay_console" not in set_cookies(answer)


class _Markup(HTMLParser):
    """What a strict CSP would block: inline scripts, styles and event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.inline.append(f"<{tag} {sorted(names)}>")
        if tag == "script" and "src" not in names:
            self.inline.append("<script> without src")
        self._tag = tag


@pytest.mark.parametrize("path", [*PAGES[:3], "/console/login"])
def test_pages_send_a_strict_csp_and_have_no_inline_script_or_style(app, signed_in, relay, path):
    relay.answered(phone_calls_sdk(ACCOUNT_SID))
    browser = Console(app.test_client()) if path == "/console/login" else signed_in
    answer = browser.get(path)
    assert answer.status_code == 200
    csp = {d.split()[0]: d.split()[1:] for d in answer.headers["Content-Security-Policy"]
           .split("; ")}
    assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["form-action"] == ["'self'"] and csp["object-src"] == ["'none'"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"
    markup = _Markup()
    markup.feed(answer.get_data(as_text=True))
    assert markup.inline == []


def test_phone_numbers_are_masked_on_the_pages(signed_in, relay):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, caller="+15005550006"))
    page = signed_in.get(f"/console/calls/{call.parent_sid}").get_data(as_text=True)
    assert "+15005550006" not in page and "+1500****006" in page
    assert "+15005550006" not in signed_in.get("/console/api/calls").get_data(as_text=True)


def test_console_disabled_answers_404_on_every_console_route(tmp_path, twilio):
    app = build(tmp_path, twilio, CONSOLE_ENABLED="false")
    client = app.test_client()
    for path in ("/console", "/console/login", "/console/api/calls", "/console/dead",
                 "/console/static/console.js"):
        assert client.get(path, base_url=PUBLIC_BASE).status_code == 404, path
    assert client.post("/console/login", base_url=PUBLIC_BASE,
                       data={"token": RELAY_TOKEN}).status_code == 404
    assert Relay(client).get("/calls").status_code == 200  # the API is unaffected
    app.extensions["callrelay.store"].close()


def test_a_malformed_console_enabled_stops_start_up(tmp_path, twilio):
    with pytest.raises(Exception, match="CONSOLE_ENABLED is malformed"):
        Settings.from_env(make_env(tmp_path, twilio, CONSOLE_ENABLED="maybe"))


def test_live_calls_are_listed_and_filtered_by_identity_or_sid(signed_in, relay):
    alice = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity="alice"))
    bob = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    listed = signed_in.get("/console/api/calls").json["calls"]
    assert sorted(c["call_sid"] for c in listed) == sorted([alice.parent_sid, bob.parent_sid])
    by_name = signed_in.get("/console/api/calls?q=BO").json["calls"]
    assert [c["call_sid"] for c in by_name] == [bob.parent_sid]
    assert [(leg["leg"], leg["sdk"], leg["identity"]) for leg in by_name[0]["legs"]] == \
        [("parent", False, None), ("child", True, "bob")]
    by_sid = signed_in.get(f"/console?q={alice.child_sid[:12]}").get_data(as_text=True)
    assert alice.child_sid in by_sid and bob.parent_sid not in by_sid


def test_the_test_message_goes_through_notify_to_the_sdk_leg(signed_in, relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    page = signed_in.get(f"/console/calls/{call.parent_sid}")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.get_data(as_text=True))
    form = {"leg": "sdk", "content": '{"test": "héllo"}', "idempotency_key": key.group(1)}
    answer = signed_in.post(f"/console/calls/{call.parent_sid}/message", form)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"/console/calls/{call.parent_sid}"
    [sent] = twilio.messages
    assert (sent.call_sid, sent.content) == (call.child_sid, '{"test": "héllo"}')
    assert sent.idempotency_key == key.group(1)
    shown = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Sent {sent.sid} to {call.child_sid} (bob)." in shown
    again = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"Sent {sent.sid}" not in again  # a notice is shown once


def test_a_refused_test_message_says_why_and_sends_nothing(signed_in, relay, twilio):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    answer = signed_in.post(f"/console/calls/{call.parent_sid}/message",
                            {"leg": "sdk", "content": "not json"})
    shown = signed_in.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Not sent (validation_failed): content is a string that does not hold JSON" in shown
    relay.play(call.hangup)
    answer = signed_in.post(f"/console/calls/{call.parent_sid}/message",
                            {"leg": "sdk", "content": "{}"})
    assert "Not sent (leg_not_live)" in signed_in.get(answer.headers["Location"]).get_data(
        as_text=True)
    assert twilio.messages == []


def test_an_unknown_call_is_a_404_page(signed_in):
    answer = signed_in.get("/console/calls/CA" + "0" * 32)
    assert answer.status_code == 404 and "call_not_found" in answer.get_data(as_text=True)
    assert signed_in.get("/console/api/calls/nonsense").json["error"]["code"] == "call_not_found"


def test_polls_and_static_files_log_at_debug_only_and_pages_at_info(signed_in, relay, caplog):
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    caplog.set_level(logging.INFO, logger="callrelay.request")
    caplog.clear()
    for path in ("/console/api/calls", f"/console/api/calls/{call.child_sid}",
                 "/console/static/console.js", f"/console/calls/{call.child_sid}"):
        assert signed_in.get(path).status_code == 200, path
    logged = [(r.route, r.status) for r in caplog.records if r.name == "callrelay.request"]
    assert logged == [("/console/calls/<call_sid>", 200)]


def test_a_page_lists_at_most_200_calls_and_the_filter_finds_the_others(app, signed_in):
    legs = app.extensions["callrelay.store"].legs
    sids = []
    for n in range(201):
        sid = new_call_sid()
        legs.apply(LegEvent(sid, "ringing", from_=f"client:user{n:03}", to="+15005550006"))
        sids.append(sid)
    page = signed_in.get("/console/api/calls").json
    assert len(page["calls"]) == 200 and page["more"] is True
    assert '<span class="count" id="call-count">200+</span>' in signed_in.get(
        "/console").get_data(as_text=True)
    by_sid = signed_in.get(f"/console/api/calls?q={sids[7]}").json
    assert [c["call_sid"] for c in by_sid["calls"]] == [sids[7]] and by_sid["more"] is False
    by_name = signed_in.get("/console/api/calls?q=user12").json
    assert sorted(c["identities"][0] for c in by_name["calls"]) == [
        f"user12{n}" for n in range(10)]


def test_the_call_page_shows_its_messages_sent_and_refused(signed_in, relay, twilio):
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    assert relay.notify({"identity": "bob", "content": {"n": 1}}).status_code == 201
    twilio.fail_next(1, status=400, code=21220)
    assert relay.notify({"identity": "bob", "content": {"n": 2}}).status_code == 502
    data = signed_in.get(f"/console/api/calls/{call.parent_sid}").json
    shown = [(m["direction"], m["status"], m["call_sid"], m["identity"])
             for m in data["messages"]]
    assert shown == [("to_sdk", "sent", call.child_sid, "bob"),
                     ("to_sdk", "failed", call.child_sid, "bob")]
    assert data["messages"][0]["sid"] == twilio.messages[0].sid
    assert data["messages"][1]["error"]["code"] == "twilio_refused"
    page = signed_in.get(f"/console/calls/{call.child_sid}").get_data(as_text=True)
    assert twilio.messages[0].sid in page and "→ to SDK" in page
    assert '<span class="pill s-failed">failed</span>' in page


def test_message_content_is_shown_only_when_kept_and_with_numbers_masked(tmp_path, twilio):
    app = build(tmp_path, twilio, MESSAGE_LOG_CONTENT="true")
    relay, console = Relay(app.test_client()), Console(app.test_client())
    console.sign_in()
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    relay.notify({"identity": "bob", "content": {"callback": "+15005550006"}})
    page = console.get(f"/console/calls/{call.parent_sid}").get_data(as_text=True)
    assert "+15005550006" not in page
    assert "{&#34;callback&#34;: &#34;+1500****006&#34;}" in page
    [message] = console.get(f"/console/api/calls/{call.parent_sid}").json["messages"]
    assert message["content_text"] == '{"callback": "+1500****006"}'
    app.extensions["callrelay.store"].close()


def test_conferences_of_live_calls_are_shown_with_their_participants(signed_in, relay):
    call = conference_call(ACCOUNT_SID, name="standup")
    relay.play(call.answer)
    page = signed_in.get("/console/conferences").get_data(as_text=True)
    assert "standup" in page and call.conference_sid in page
    rows = re.findall(r"<tr>\s*<td.*?</tr>", page, re.S)  # the participants, present
    assert len(rows) == 3
    by_sid = {sid: row for row in rows for sid in [*call.sdk_sids.values(), call.phone_sid]
              if sid in row}
    for identity, sid in call.sdk_sids.items():
        assert "SDK</span> " + identity in by_sid[sid]
    assert "call not seen by callrelay" in by_sid[call.phone_sid]
    relay.play(call.hangup)
    assert call.conference_sid not in signed_in.get("/console/conferences").get_data(
        as_text=True)  # no live call is in it any more
    ended = signed_in.get("/console/conferences?ref=standup").get_data(as_text=True)
    assert call.conference_sid in ended and "s-completed" in ended
    unknown = signed_in.get("/console/conferences?ref=nobody-here").get_data(as_text=True)
    assert "callrelay knows no conference with this name" in unknown
