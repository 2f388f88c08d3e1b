"""A Flask test client that speaks to callrelay as Twilio and as a backend would."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sandbox.calls import Call, Step
from tests.support.env import PUBLIC_BASE, RELAY_TOKEN, sign


class Relay:
    """A test client that speaks as Twilio (signed webhooks) and as a backend (bearer token)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def webhook(self, path: str, params: dict[str, str], *,
                signature: str | None = None) -> TestResponse:
        sig = sign(PUBLIC_BASE + path, params) if signature is None else signature
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": sig})

    def play(self, steps: list[Step]) -> None:
        for step in steps:
            answer = self.webhook(step.path, step.params)
            assert answer.status_code in (200, 204), (step.note, answer.status_code, answer.data)

    def notify(self, body: Any, token: str = RELAY_TOKEN) -> TestResponse:
        # Serialised here, not by Flask's test client (which sorts keys), as a backend would.
        return self.client.post("/notify", data=json.dumps(body), content_type="application/json",
                                headers={"Authorization": f"Bearer {token}"})

    def get(self, path: str, token: str = RELAY_TOKEN) -> TestResponse:
        return self.client.get(path, headers={"Authorization": f"Bearer {token}"})

    def answered(self, call: Call) -> Call:
        self.play(call.answer)
        return call
