"""The README's ticket-minting code (Python and Node.js) mints tickets callrelay accepts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from sandbox.devtools import ROOT
from services.twilio.conference_access import ConferenceAccess

SECRET = "docs-conference-ticket-secret-0123456789abcdef"
ENV = {"CONFERENCE_TICKET_SECRET": SECRET, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
       "TWILIO_API_KEY": "SK" + "0" * 32, "TWILIO_API_SECRET": "api-secret-" + "0" * 32,
       "TWIML_APP_SID": "AP" + "0" * 32}


def readme_block(language: str, containing: str) -> str:
    """The README's code block in `language` that holds `containing`."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", (ROOT / "README.md").read_text(),
                        re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_the_python_example_mints_what_callrelay_accepts(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    namespace: dict = {}
    exec(readme_block("python", "def conference_ticket"), namespace)  # noqa: S102
    credentials = namespace["voice_credentials"]("alice", "support-4711")
    assert credentials["token"].count(".") == 2  # a JWT beside it
    ticket = credentials["conferenceTicket"]
    access = ConferenceAccess(SECRET)
    assert access.refusal("alice", "support-4711", ticket) is None
    assert access.refusal("mallory", "support-4711", ticket) == "conference_ticket_invalid"
    assert access.refusal("alice", "support-4712", ticket) == "conference_ticket_invalid"


def test_the_node_example_mints_what_callrelay_accepts():
    if shutil.which("node") is None:
        # CI installs Node.js for Prism (CALLRELAY_REQUIRE_PRISM=1): there, this must run.
        if os.environ.get("CALLRELAY_REQUIRE_PRISM") == "1":
            pytest.fail("Node.js is not installed, and CALLRELAY_REQUIRE_PRISM=1 needs it")
        pytest.skip("Node.js is not installed")
    block = readme_block("js", "function conferenceTicket")
    # The function alone: the rest needs the twilio npm package.
    function = re.search(r"^function conferenceTicket.*?^}\n", block, re.MULTILINE | re.DOTALL)
    assert function is not None
    script = ('const crypto = require("node:crypto");\n' + function.group(0)
              + 'process.stdout.write(conferenceTicket("alice", "support-4711"));\n')
    ticket = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True,
                            timeout=30, env={"CONFERENCE_TICKET_SECRET": SECRET}).stdout
    access = ConferenceAccess(SECRET)
    assert access.refusal("alice", "support-4711", ticket) is None
    assert access.refusal("bob", "support-4711", ticket) == "conference_ticket_invalid"
