"""The quickstart way to take Twilio status callbacks: validate the signature, write a dict.

Deliberately written as Twilio's quickstarts are (module-level app, settings read at import):
it is the baseline callrelay's /twilio/status is measured against, not an example to follow.

    gunicorn -w 2 -k gthread --threads 8 bench.baselines.quickstart_webhook:app
"""

from __future__ import annotations

import os

from flask import Flask, abort, request
from twilio.request_validator import RequestValidator

app = Flask(__name__)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
calls: dict[str, str] = {}


@app.post("/twilio/status")
def status() -> tuple[str, int]:
    """Record the call's latest status, once the signature checks out."""
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(request.url, request.form, signature):
        abort(403)
    calls[request.form["CallSid"]] = request.form["CallStatus"]
    return "", 204
