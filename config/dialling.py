"""The dial policy's variables: DIAL_ALLOW and DIAL_SIP_DOMAINS, with TWILIO_CALLER_ID."""

from __future__ import annotations

import re
from typing import Any

import phonenumbers

from config.reader import EnvReader

E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
DIAL_PREFIX_RE = re.compile(r"\*|\+[1-9][0-9]{0,14}")
HOSTNAME_RE = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                         r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def read_dialling(reader: EnvReader) -> dict[str, Any]:
    """TWILIO_CALLER_ID, DIAL_ALLOW (default: the caller ID's country calling code; none
    without one) and DIAL_SIP_DOMAINS, as Settings fields."""
    caller_id = reader.optional("TWILIO_CALLER_ID")
    code = _calling_code(reader, caller_id) if caller_id else None
    allow = reader.csv("DIAL_ALLOW", DIAL_PREFIX_RE, "comma-separated E.164 prefixes such as "
                       "+1,+44, or *")
    if allow is None:
        allow = (f"+{code}",) if code else ()
    domains = reader.csv("DIAL_SIP_DOMAINS", HOSTNAME_RE, "comma-separated domain names such "
                         "as example.sip.twilio.com", lower=True)
    return {"twilio_caller_id": caller_id if code else None, "dial_allow": allow,
            "dial_sip_domains": frozenset(domains or ())}


def _calling_code(reader: EnvReader, caller_id: str) -> int | None:
    """The country calling code of TWILIO_CALLER_ID (a problem if it is no E.164 number)."""
    try:
        code = E164_RE.fullmatch(caller_id) and phonenumbers.parse(caller_id).country_code
        if code:
            return code
    except phonenumbers.NumberParseException:
        pass
    reader.problem("TWILIO_CALLER_ID is malformed: expected an E.164 number of your Twilio "
                   "account, such as +15005550006")
    return None
