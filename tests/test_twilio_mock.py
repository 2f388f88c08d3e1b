"""The Twilio mock, exercised through the real twilio SDK over HTTP."""

from __future__ import annotations

import json
import os
import queue
import signal
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.api.v2010.account.call.user_defined_message import UserDefinedMessageInstance

from sandbox.mock_identity import answering_pid, wait_for_mock
from sandbox.twilio_mock import TwilioMock
from tests.forwarding.support import wait_until

ACCOUNT = "AC" + "a" * 32
TOKEN = "test-auth-token"
API_KEY, API_SECRET = "SK" + "b" * 32, "test-api-secret"
CALL = "CA" + "1" * 32
ROOT = Path(__file__).resolve().parents[1]


def sdk(mock: TwilioMock, username: str = ACCOUNT, password: str = TOKEN,
        account_sid: str = ACCOUNT, timeout: float = 5.0) -> Client:
    client = Client(username, password, account_sid,
                    http_client=TwilioHttpClient(timeout=timeout))
    client.api.base_url = mock.base_url
    return client


@pytest.fixture
def mock() -> Iterator[TwilioMock]:
    with TwilioMock(ACCOUNT, {ACCOUNT: TOKEN, API_KEY: API_SECRET}).start() as server:
        yield server


@pytest.fixture
def client(mock: TwilioMock) -> Client:
    return sdk(mock)


def send(client: Client, content: str = '{"n": 1}', key: str | None = None,
         call: str = CALL) -> UserDefinedMessageInstance:
    messages = client.calls(call).user_defined_messages
    return messages.create(content=content, **({"idempotency_key": key} if key else {}))


def refused(client: Client, **kwargs: str) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        send(client, **kwargs)
    return caught.value


def test_message_is_created_with_exact_content_and_key(mock: TwilioMock, client: Client) -> None:
    mock.set_call(CALL, "in-progress")
    content = '{"type": "hello", "text": "caf\u00e9 & co"}'
    msg = client.calls(CALL).user_defined_messages.create(content=content, idempotency_key="k1")
    assert msg.sid.startswith("KX") and len(msg.sid) == 34
    assert (msg.call_sid, msg.account_sid) == (CALL, ACCOUNT)
    assert isinstance(msg.date_created, datetime)
    [recorded] = mock.messages
    assert (recorded.sid, recorded.call_sid) == (msg.sid, CALL)
    assert (recorded.content, recorded.idempotency_key) == (content, "k1")
    last = mock.requests[-1]
    assert (last.method, last.username) == ("POST", ACCOUNT)
    assert last.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/UserDefinedMessages.json"
    assert last.form == {"Content": content, "IdempotencyKey": "k1"}
    assert last.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_same_idempotency_key_yields_one_message(mock: TwilioMock, client: Client) -> None:
    first = send(client, key="retry-1")
    again = send(client, key="retry-1")
    other_call = send(client, key="retry-1", call="CA" + "2" * 32)
    assert again.sid == first.sid and other_call.sid != first.sid
    assert [m.call_sid for m in mock.messages] == [CALL, "CA" + "2" * 32]
    assert len(mock.requests) == 3


def test_api_key_credentials_are_accepted(mock: TwilioMock) -> None:
    send(sdk(mock, API_KEY, API_SECRET))
    assert mock.requests[-1].username == API_KEY


@pytest.mark.parametrize(("username", "password"), [(ACCOUNT, "wrong"), ("ACnobody", TOKEN)])
def test_bad_auth_is_401(mock: TwilioMock, username: str, password: str) -> None:
    error = refused(sdk(mock, username, password))
    assert (error.status, error.code) == (401, 20003)
    assert mock.messages == [] and mock.requests[-1].username == username


def test_error_body_has_twilios_shape(mock: TwilioMock) -> None:
    url = f"{mock.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}/UserDefinedMessages.json"
    answer = requests.post(url, data={"Content": "{"}, auth=(ACCOUNT, TOKEN), timeout=5)
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"code": 32702, "status": 400, "message": answer.json()["message"],
                             "more_info": "https://www.twilio.com/docs/errors/32702"}


def test_content_must_be_json(mock: TwilioMock, client: Client) -> None:
    error = refused(client, content="hello, not json")
    assert (error.status, error.code) == (400, 32702)
    assert mock.messages == []


def test_content_is_limited_to_10000_characters(mock: TwilioMock, client: Client) -> None:
    send(client, content=json.dumps("x" * 9998))  # exactly 10,000 characters
    error = refused(client, content=json.dumps("x" * 9999))
    assert (error.status, error.code) == (400, 32703)
    assert len(mock.messages) == 1


@pytest.mark.parametrize("status", ["queued", "completed", "canceled"])
def test_call_that_is_not_live_is_refused(mock: TwilioMock, client: Client, status: str) -> None:
    mock.set_call(CALL, "ringing")
    send(client)
    mock.set_call(CALL, status)
    error = refused(client)
    assert (error.status, error.code) == (400, 21220)
    assert len(mock.messages) == 1


def test_unknown_call_is_accepted_unless_strict(mock: TwilioMock, client: Client) -> None:
    send(client)
    mock.strict_calls = True
    error = refused(client)
    assert (error.status, error.code) == (404, 20404)
    assert len(mock.messages) == 1


def test_other_account_in_path_is_404(mock: TwilioMock) -> None:
    error = refused(sdk(mock, account_sid="AC" + "f" * 32))
    assert (error.status, error.code) == (404, 20404)


def test_injected_failures_then_success(mock: TwilioMock, client: Client) -> None:
    mock.fail_next(2, 503)
    for _ in range(2):
        error = refused(client, key="same")
        assert (error.status, error.code) == (503, 20503)
    msg = send(client, key="same")
    assert [m.sid for m in mock.messages] == [msg.sid]
    assert len(mock.requests) == 3


def test_injected_failures_can_target_one_endpoint(mock: TwilioMock, client: Client) -> None:
    parent, child = "CA" + "3" * 32, "CA" + "4" * 32
    mock.set_call(parent, "in-progress")
    mock.set_call(child, "in-progress", parent_call_sid=parent)
    mock.fail_next(2, 429, only="list_calls")
    assert client.calls(child).fetch().sid == child  # other endpoints are not failed
    send(client, call=child)
    for _ in range(2):
        with pytest.raises(TwilioException) as caught:
            client.calls.list(parent_call_sid=parent)
        # A failed page is a bare TwilioException carrying the HTTP response, as from Twilio.
        page = caught.value.args[1]
        assert (page.status_code, json.loads(page.text)["code"]) == (429, 20429)
    assert [c.sid for c in client.calls.list(parent_call_sid=parent)] == [child]
    with pytest.raises(ValueError, match="list_call"):
        mock.fail_next(1, only="list_call")


def test_injected_429_carries_retry_after(mock: TwilioMock) -> None:
    mock.fail_next(1, 429, retry_after=2)
    url = f"{mock.base_url}/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    answer = requests.get(url, auth=(ACCOUNT, TOKEN), timeout=5)
    assert (answer.status_code, answer.json()["code"]) == (429, 20429)
    assert answer.headers["Retry-After"] == "2"


def sends_in_threads(client: Client, n: int) -> tuple[list[threading.Thread], list[object]]:
    """`n` sends, each in a thread that hands back the message or the error it got."""
    outcomes: list[object] = []

    def one() -> None:
        try:
            outcomes.append(send(client))
        except Exception as error:  # handed back: the main thread asserts
            outcomes.append(error)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_delay_does_not_serialize_requests(mock: TwilioMock) -> None:
    # Each request hangs until stop(): all three arrive only if they are served side by side.
    mock.delay = 300
    threads, outcomes = sends_in_threads(sdk(mock, timeout=600), 3)
    wait_until(lambda: len(mock.requests) == 3)
    mock.stop()  # wakes them all
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert [type(o) for o in outcomes] == [UserDefinedMessageInstance] * 3
    assert len(mock.messages) == 3


def test_a_hang_times_out_the_client_and_stop_wakes_the_hung_requests(mock: TwilioMock) -> None:
    mock.delay = 300
    with pytest.raises(requests.exceptions.Timeout):
        send(sdk(mock, timeout=0.3))
    assert len(mock.requests) == 1
    # A request still hanging when the mock stops is answered then, not after its delay.
    threads, outcomes = sends_in_threads(sdk(mock, timeout=600), 1)
    wait_until(lambda: len(mock.requests) == 2)
    mock.stop()
    threads[0].join(timeout=30)
    assert not threads[0].is_alive()
    assert [type(o) for o in outcomes] == [UserDefinedMessageInstance]


def test_calls_fetch_and_list_by_parent(mock: TwilioMock, client: Client) -> None:
    parent, child, other = "CA" + "3" * 32, "CA" + "4" * 32, "CA" + "5" * 32
    mock.set_call(parent, "in-progress", from_="client:alice", to="+15005550006")
    mock.set_call(child, "ringing", parent_call_sid=parent, to="+15005550006",
                  direction="outbound-dial")
    mock.set_call(other, "completed", parent_call_sid="CA" + "6" * 32)
    call = client.calls(child).fetch()
    assert (call.sid, call.parent_call_sid, call.status) == (child, parent, "ringing")
    assert (call.direction, call.to, call.account_sid) == ("outbound-dial", "+15005550006", ACCOUNT)
    assert isinstance(call.date_created, datetime)
    assert [c.sid for c in client.calls.list(parent_call_sid=parent)] == [child]
    assert [c.sid for c in client.calls.list(status="completed")] == [other]
    assert [c.sid for c in client.calls.list(from_="client:alice")] == [parent]
    assert len(client.calls.list(page_size=1)) == 3  # follows next_page_uri
    with pytest.raises(TwilioRestException) as caught:
        client.calls("CA" + "7" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (404, 20404)


def test_subscription_create_and_delete(mock: TwilioMock, client: Client) -> None:
    mock.set_call(CALL, "in-progress")
    subscriptions = client.calls(CALL).user_defined_message_subscriptions
    sub = subscriptions.create(callback="https://relay.example.com/twilio/messages",
                               idempotency_key="s1")
    assert sub.sid.startswith("ZY") and sub.call_sid == CALL
    assert sub.uri.endswith(f"/Calls/{CALL}/UserDefinedMessageSubscriptions/{sub.sid}.json")
    assert subscriptions.create(callback="https://x.example.com/", idempotency_key="s1").sid \
        == sub.sid
    [recorded] = mock.subscriptions
    assert (recorded.callback, recorded.method, recorded.active) == (
        "https://relay.example.com/twilio/messages", "POST", True)
    assert client.calls(CALL).user_defined_message_subscriptions(sub.sid).delete() is True
    assert mock.subscriptions[0].active is False
    with pytest.raises(TwilioRestException) as caught:
        client.calls(CALL).user_defined_message_subscriptions(sub.sid).delete()
    assert (caught.value.status, caught.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as caught:
        subscriptions.create(callback="https://my_host.example.com/hook")
    assert caught.value.status == 400
    mock.set_call(CALL, "completed")
    with pytest.raises(TwilioRestException) as caught:
        subscriptions.create(callback="https://relay.example.com/hook", method="GET")
    assert caught.value.code == 21220


def test_reset_forgets_everything(mock: TwilioMock, client: Client) -> None:
    mock.set_call(CALL, "completed")
    mock.fail_next(5)
    mock.reset()
    send(client)
    assert len(mock.messages) == 1 and len(mock.requests) == 1


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line.rstrip("\n"))


def test_command_line_prints_what_it_receives() -> None:
    env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.twilio_mock", "--port", "0"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        banner = lines.get(timeout=15)
        base_url = banner.split(" on ", 1)[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:")
        client = Client(ACCOUNT, TOKEN, ACCOUNT, http_client=TwilioHttpClient(timeout=5))
        client.api.base_url = base_url
        client.calls(CALL).user_defined_messages.create(content='{"hello": "world"}')
        line = lines.get(timeout=5)
        assert CALL in line and '{"hello":"world"}' in line
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_identity_names_the_mocks_process_for_scripts_run(mock: TwilioMock) -> None:
    assert wait_for_mock(mock.base_url, os.getpid()) is True
    # Another live process's mock is not the one scripts/run started.
    assert wait_for_mock(mock.base_url, os.getppid(), wait_s=2) is False


def test_a_program_that_is_no_mock_is_not_taken_for_one() -> None:
    with socketserver.TCPServer(("127.0.0.1", 0), _NotAMock) as stranger:
        threading.Thread(target=stranger.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{stranger.server_address[1]}"
            assert answering_pid(url) == 0
            assert wait_for_mock(url, os.getpid(), wait_s=2) is False
        finally:
            stranger.shutdown()


class _NotAMock(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.rfile.readline()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
