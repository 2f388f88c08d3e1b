"""UserDefinedMessageSubscriptions: one per live SDK leg, whatever races, never failing a webhook."""

import threading

from flask import Flask

from sandbox.calls import phone_calls_sdk, sdk_calls_phone, sdk_calls_sdk
from tests.support.env import ACCOUNT_SID, PUBLIC_BASE
from tests.support.relay import Relay


def settle(*apps: Flask) -> None:
    """Wait for every app's background subscriptions to finish."""
    for app in apps:
        subscriber = app.extensions["callrelay.forwarding"].subscriber
        assert subscriber is None or subscriber.wait_idle(20.0)


def subscription_posts(twilio):
    return [r for r in twilio.requests
            if r.method == "POST" and r.path.endswith("/UserDefinedMessageSubscriptions.json")]


def test_sdk_leg_is_subscribed_once_with_the_messages_callback(fwd, fwd_app, twilio):
    call = fwd.answered(phone_calls_sdk(ACCOUNT_SID, identity="bob"))
    fwd.play(call.answer[1:])  # repeated ringing/in-progress callbacks
    settle(fwd_app)
    [sub] = twilio.subscriptions
    assert sub.call_sid == call.child_sid == call.sdk_sid
    assert (sub.callback, sub.method) == (f"{PUBLIC_BASE}/twilio/messages", "POST")
    assert sub.idempotency_key == f"callrelay-subscription-{call.child_sid}"
    assert len(subscription_posts(twilio)) == 1


def test_outgoing_sdk_call_is_subscribed_on_the_parent(fwd, fwd_app, twilio):
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    settle(fwd_app)
    assert [s.call_sid for s in twilio.subscriptions] == [call.parent_sid]


def test_both_sdk_legs_of_a_client_to_client_call(fwd, fwd_app, twilio):
    call = fwd.answered(sdk_calls_sdk(ACCOUNT_SID))
    settle(fwd_app)
    assert sorted(s.call_sid for s in twilio.subscriptions) == sorted(
        [call.parent_sid, call.child_sid])


def test_racing_callbacks_across_workers_subscribe_once(make_app, twilio):
    workers = [make_app(), make_app()]  # two processes' worth of apps on one SQLite file
    call = phone_calls_sdk(ACCOUNT_SID)
    Relay(workers[0].test_client()).play(call.answer[:1])
    racing = [step for step in call.answer[1:] if step.params["CallStatus"] != "initiated"]
    start = threading.Barrier(8)
    answers: list[int] = []

    def fire(i: int) -> None:
        relay = Relay(workers[i % 2].test_client())
        step = racing[i % len(racing)]
        start.wait()
        answers.append(relay.webhook(step.path, step.params).status_code)

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settle(*workers)
    assert answers == [204] * 8
    assert len(subscription_posts(twilio)) == 1
    assert [s.call_sid for s in twilio.subscriptions] == [call.sdk_sid]


def test_twilio_errors_are_retried_in_the_background(fwd, fwd_app, twilio):
    twilio.fail_next(2, 503)
    call = fwd.answered(sdk_calls_phone(ACCOUNT_SID))
    settle(fwd_app)
    assert [s.call_sid for s in twilio.subscriptions] == [call.sdk_sid]


def test_a_refused_subscription_is_tried_again_by_a_later_callback(make_app, twilio):
    app = make_app(NOTIFY_DEADLINE_S="0.5")
    relay = Relay(app.test_client())
    call = phone_calls_sdk(ACCOUNT_SID)
    twilio.fail_next(1, 400, 21220)  # "Invalid call state": not retried
    relay.play(call.answer[:2])  # the parent, then the SDK child ringing
    settle(app)
    assert len(subscription_posts(twilio)) == 1 and twilio.subscriptions == []
    relay.play(call.answer[2:])  # initiated (late), in-progress: the lease was released
    settle(app)
    assert [s.call_sid for s in twilio.subscriptions] == [call.sdk_sid]


def test_twilio_down_never_fails_the_webhook(make_app, twilio):
    app = make_app(NOTIFY_DEADLINE_S="0.3")
    relay = Relay(app.test_client())
    twilio.fail_next(1000, 503)
    call = relay.answered(phone_calls_sdk(ACCOUNT_SID))  # every webhook answered 2xx
    settle(app)
    assert twilio.subscriptions == []
    twilio.fail_next(0)
    relay.play(call.answer[-1:])  # Twilio is back: the next callback subscribes
    settle(app)
    assert [s.call_sid for s in twilio.subscriptions] == [call.sdk_sid]


def test_subscribe_messages_off(make_app, twilio):
    app = make_app(SUBSCRIBE_MESSAGES="off")
    Relay(app.test_client()).answered(phone_calls_sdk(ACCOUNT_SID))
    assert app.extensions["callrelay.forwarding"].subscriber is None
    assert subscription_posts(twilio) == []


def test_no_forward_url_means_no_subscription(relay, twilio):
    relay.answered(phone_calls_sdk(ACCOUNT_SID))
    assert subscription_posts(twilio) == []
