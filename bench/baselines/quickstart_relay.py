"""The quickstart way to relay a message to a call: check a bearer token, one SDK call.

Deliberately written as Twilio's quickstarts are (module-level client, nothing tracked, the
caller must know the leg's SID): it is the baseline callrelay's /notify is measured against.

    gunicorn -w 2 -k gthread --threads 16 bench.baselines.quickstart_relay:app
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, abort, request
from twilio.rest import Client

app = Flask(__name__)
client = Client(os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"])
client.api.base_url = os.environ.get("TWILIO_API_BASE_URL", "https://api.twilio.com")
TOKEN = os.environ["RELAY_TOKEN"]


@app.post("/notify")
def notify() -> tuple[dict[str, Any], int]:
    """Create a UserDefinedMessage on the call leg the caller names."""
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        abort(401)
    body = request.get_json()
    message = client.calls(body["call_sid"]).user_defined_messages.create(
        content=json.dumps(body["content"]))
    return {"sid": message.sid, "call_sid": message.call_sid}, 201
