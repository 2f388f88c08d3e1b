"""The dial policy's variables: DIAL_ALLOW, DIAL_SIP_DOMAINS and TWILIO_CALLER_ID, and who may
join conferences (CONFERENCE_TICKET_SECRET, DIAL_CONFERENCES)."""

from __future__ import annotations

import re
from typing import Any

from config.reader import EnvReader

E164_RE = re.compile(r"\+[1-9][0-9]{6,14}")
# An E.164 prefix, an ISO 3166 region code (checked against phonenumbers' regions), or `*`.
DIAL_ENTRY_RE = re.compile(r"\*|\+[1-9][0-9]{0,14}|[A-Za-z]{2}")
HOSTNAME_RE = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
                         r"(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
DIAL_ALLOW_EXPECTED = ("comma-separated E.164 prefixes and ISO 3166 region codes such as "
                       "US,CA,+44, or *")
# An HMAC-SHA256 key: shorter secrets can be guessed offline from one ticket.
MIN_TICKET_SECRET = 32
OPEN = "open"


def read_dialling(reader: EnvReader) -> dict[str, Any]:
    """TWILIO_CALLER_ID, DIAL_ALLOW (default: the caller ID's region; none without one),
    DIAL_SIP_DOMAINS and the conference variables, as Settings fields."""
    caller_id = reader.optional("TWILIO_CALLER_ID")
    region = _caller_region(reader, caller_id) if caller_id else None
    allow = _dial_allow(reader)
    if allow is None:
        # The region, not the calling code: +1 is 25 countries (the NANP), most of them the
        # Caribbean's classic toll-fraud destinations.
        allow = (region,) if region else ()
    domains = reader.csv("DIAL_SIP_DOMAINS", HOSTNAME_RE, "comma-separated domain names such "
                         "as example.sip.twilio.com", lower=True)
    return {"twilio_caller_id": caller_id if region is not None else None, "dial_allow": allow,
            "dial_sip_domains": frozenset(domains or ()), **_conferences(reader)}


def _dial_allow(reader: EnvReader) -> tuple[str, ...] | None:
    """DIAL_ALLOW's entries, region codes in upper case; None when unset or malformed."""
    entries = reader.csv("DIAL_ALLOW", DIAL_ENTRY_RE, DIAL_ALLOW_EXPECTED)
    if entries is None:
        return None
    entries = tuple(e.upper() if e[0].isalpha() else e for e in entries)
    # phonenumbers (1.1 MiB of a worker's memory) only when there are regions to check.
    import phonenumbers

    unknown = [e for e in entries if e[0].isalpha()
               and e not in phonenumbers.SUPPORTED_REGIONS]
    if unknown:
        reader.problem(f"DIAL_ALLOW is malformed: expected {DIAL_ALLOW_EXPECTED} "
                       f"({', '.join(unknown)} is no region code)")
        return None
    return entries


def _caller_region(reader: EnvReader, caller_id: str) -> str | None:
    """The region of TWILIO_CALLER_ID ("" for a number of no region, such as a satellite
    one); None, and a problem, if it is no E.164 number."""
    import phonenumbers

    try:
        if E164_RE.fullmatch(caller_id):
            parsed = phonenumbers.parse(caller_id)
            if parsed.country_code:
                region = phonenumbers.region_code_for_number(parsed) or ""
                return "" if region in ("001", "ZZ") else region
    except phonenumbers.NumberParseException:
        pass
    reader.problem("TWILIO_CALLER_ID is malformed: expected an E.164 number of your Twilio "
                   "account, such as +15005550006")
    return None


def _conferences(reader: EnvReader) -> dict[str, Any]:
    """CONFERENCE_TICKET_SECRET and DIAL_CONFERENCES: by ticket, open to anyone, or closed."""
    secret = reader.optional("CONFERENCE_TICKET_SECRET")
    if secret is not None and len(secret) < MIN_TICKET_SECRET:
        reader.problem(f"CONFERENCE_TICKET_SECRET is malformed: expected at least "
                       f"{MIN_TICKET_SECRET} random characters, such as the output of "
                       "`openssl rand -hex 32`")
        secret = None
    mode = (reader.optional("DIAL_CONFERENCES") or "").lower()
    if mode and mode != OPEN:
        reader.problem("DIAL_CONFERENCES is malformed: expected open (anyone may join any "
                       "conference), or unset")
    elif mode == OPEN and secret is not None:
        reader.problem("DIAL_CONFERENCES is malformed: open lets anyone join any conference, "
                       "so CONFERENCE_TICKET_SECRET would check nothing; set one or the other")
    return {"conference_ticket_secret": secret, "dial_conferences_open": mode == OPEN}
