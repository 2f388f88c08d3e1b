"""FORWARD_SECRET rotation: during it, a backend holding the old secret and one holding the new
one both verify every event with the standardwebhooks library."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from sandbox.calls import sdk_calls_phone
from tests.forwarding.support import SECRET, Backend, Delivery, post_json, sdk_message, stop_app
from tests.support.env import ACCOUNT_SID
from tests.support.relay import Relay

OLD = SECRET
NEW = "whsec_" + base64.b64encode(b"the-new-forwarding-secret-32byte").decode()
UNRELATED = "whsec_" + base64.b64encode(b"a-secret-nobody-configured-here!").decode()


def forward_one(app: Flask, backend: Backend, n: int) -> Delivery:
    """One SDK message through `app`; the backend's delivery of it."""
    relay = Relay(app.test_client())
    call = relay.answered(sdk_calls_phone(ACCOUNT_SID, identity=f"user{n}"))
    fields = sdk_message(call.sdk_sid, {"n": n})
    assert post_json(relay.client, fields).status_code == 204
    backend.wait_for(lambda ds: any(d.id == f"msg_{fields['Sid']}" for d in ds))
    [delivery] = [d for d in backend.deliveries if d.id == f"msg_{fields['Sid']}"]
    return delivery


def verifies(secret: str, delivery: Delivery) -> bool:
    """What a backend holding only `secret` concludes about the delivery."""
    try:
        event = Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError:
        return False
    assert event["type"] == "call.message"
    return True


def test_each_step_of_a_rotation_keeps_every_receiver_verifying(make_app, backend):
    # Before: the old secret alone.
    before = make_app(FORWARD_SECRET=OLD)
    delivery = forward_one(before, backend, 1)
    assert (verifies(OLD, delivery), verifies(NEW, delivery)) == (True, False)
    stop_app(before)

    # During: the new secret first, the old one still listed. Receivers move one by one.
    during = make_app(FORWARD_SECRET=f"{NEW},{OLD}")
    delivery = forward_one(during, backend, 2)
    assert (verifies(OLD, delivery), verifies(NEW, delivery)) == (True, True)
    assert not verifies(UNRELATED, delivery)
    assert len(delivery.headers["webhook-signature"].split(" ")) == 2
    stop_app(during)

    # After: the old secret is retired, and no longer verifies.
    after = make_app(FORWARD_SECRET=NEW)
    delivery = forward_one(after, backend, 3)
    assert (verifies(OLD, delivery), verifies(NEW, delivery)) == (False, True)


def test_a_tampered_body_fails_with_either_secret(make_app, backend):
    delivery = forward_one(make_app(FORWARD_SECRET=f"{NEW},{OLD}"), backend, 1)
    tampered = Delivery(delivery.headers, delivery.body.replace(b'"n":1', b'"n":2'), 204)
    for secret in (OLD, NEW):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered.body, tampered.headers)
