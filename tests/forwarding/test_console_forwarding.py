"""The console's dead letters page and test event, on an app that forwards to a real backend."""

from sandbox.calls import sdk_calls_phone
from tests.forwarding.support import post_json, sdk_message, wait_until
from tests.support.console import Console
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay


def dead_rows(console):
    page = console.get("/console/dead").get_data(as_text=True)
    return [line.split('"')[1] for line in page.splitlines() if "<tr data-event=" in line]


def test_retry_delete_and_retry_all_from_the_dead_letters_page(make_app, backend):
    app = make_app(FORWARD_MAX_ATTEMPTS="1")
    relay, console = Relay(app.test_client()), Console(app.test_client())
    assert console.sign_in().status_code == 303
    backend.answer = lambda d: 500
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID))
    ids = []
    for n in range(4):
        fields = sdk_message(call.sdk_sid, {"n": n}, seq=n + 1)
        assert post_json(relay.client, fields).status_code == 204
        ids.append(f"msg_{fields['Sid']}")
    wait_until(lambda: len(dead_rows(console)) == 4)
    assert dead_rows(console) == ids[::-1]  # newest first
    backend.answer = lambda d: 204

    retried = console.post(f"/console/dead/{ids[0]}/retry")
    assert retried.status_code == 303 and retried.headers["Location"] == "/console/dead"
    assert f"{ids[0]} queued again." in console.get("/console/dead").get_data(as_text=True)
    backend.wait_accepted(1)
    assert console.post(f"/console/dead/{ids[1]}/delete").status_code == 303
    assert dead_rows(console) == [ids[3], ids[2]]
    assert console.post("/console/dead/retry-all").status_code == 303
    backend.wait_accepted(3)
    assert [d.id for d in backend.accepted()] == [ids[0], ids[2], ids[3]]
    assert dead_rows(console) == []
    gone = console.post(f"/console/dead/{ids[1]}/retry")
    assert "is no longer a dead letter" in console.get(gone.headers["Location"]).get_data(
        as_text=True)


def test_the_test_event_form_reaches_the_backend(make_app, backend):
    app = make_app()
    console = Console(app.test_client())
    console.sign_in()
    answer = console.post("/console/test-event", {"note": "is the backend up?"})
    assert answer.status_code == 303
    [delivery] = backend.wait_accepted(1)
    event = delivery.verified()
    assert (event["type"], event["data"]) == ("callrelay.test", {"note": "is the backend up?"})
    notice = console.get("/console/dead").get_data(as_text=True)
    assert f"Test event {delivery.id} queued" in notice


def test_without_forwarding_the_page_says_so_and_the_buttons_do_nothing(app):
    console = Console(app.test_client())
    console.sign_in()
    page = console.get("/console/dead").get_data(as_text=True)
    assert "Forwarding is off" in page and "Retry all" not in page
    answer = console.post("/console/dead/retry-all")
    assert answer.status_code == 404
    assert "forwarding_disabled" in answer.get_data(as_text=True)
