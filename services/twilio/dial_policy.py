"""The dial policy: which `To` an SDK caller may reach, since any access token holder picks it.

Phone numbers are normalised to E.164 (a national number is read in the caller ID's country),
then dialled only when valid, neither premium-rate, shared-cost nor personal (as the
`phonenumbers` library classifies them), and under one of the allowed prefixes or in one of the
allowed regions. SIP goes only to listed domains, through a strict
`sip:user@host[:port][;params]` whose parameters come from a fixed list. SDK clients are free
(nobody pays a premium to reach them); conferences are the TwiML's to allow (who may join
which is not a question of cost). Everything else is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Protocol

from services.observability.redaction import mask_phone

if TYPE_CHECKING:
    import phonenumbers

NUMBER, CLIENT, SIP, CONFERENCE = "number", "client", "sip", "conference"
ALLOW_ANY = "*"
# Digits with the usual separators, ASCII only: phonenumbers would read other scripts' digits.
_PHONE_RE = re.compile(r"\+?\(?[0-9][0-9\-\s().]{0,30}", re.ASCII)
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]{0,30}):", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
# RFC 3261 with no password, no headers (`?X-…` would inject SIP headers) and nothing after.
_SIP_RE = re.compile(
    r"sip:(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})+"
    rf"@(?P<host>{_LABEL}(?:\.{_LABEL})*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>(?:;[A-Za-z0-9\-_.!~*'%]+(?:=[A-Za-z0-9\-_.!~*'%\[\]/:&+$]+)?)*)", re.ASCII)
# The URI parameters Twilio documents for <Sip> (transport; region and edge: where Twilio sends
# from) and RFC 3261's user=phone. Any other is refused: `maddr` replaces the host the domain
# check passed (RFC 3261, 19.1.1), and the rest have no use worth the risk.
_TOKEN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}", re.ASCII)
_SIP_PARAMS: dict[str, re.Pattern[str]] = {
    "transport": re.compile(r"udp|tcp|tls", re.ASCII),
    "user": re.compile(r"phone|ip", re.ASCII),
    "region": _TOKEN,
    "edge": _TOKEN,
}


@cache
def _refused_types() -> dict[int, str]:
    """The number types refused whatever the prefix, by phonenumbers' PhoneNumberType."""
    from phonenumbers import PhoneNumberType

    return {PhoneNumberType.PREMIUM_RATE: "premium_rate",
            PhoneNumberType.SHARED_COST: "shared_cost",
            # Personal numbers (the UK's 070, the NANP's 5XX) forward anywhere, at the rates
            # their owner sets.
            PhoneNumberType.PERSONAL_NUMBER: "personal_number"}


@dataclass(frozen=True)
class Allowed:
    """Dial it: `noun` is number, client, sip or conference; `address` what goes in the noun."""

    noun: str
    address: str


@dataclass(frozen=True)
class Refused:
    """Do not dial it: why (a metric label), and the destination masked for the logs."""

    reason: str
    destination: str


class DialObserver(Protocol):
    """Told about each refused destination (the metrics)."""

    def dial_refused(self, reason: str) -> None:
        """One destination was refused, for `reason`."""
        ...


@dataclass(frozen=True)
class DialPolicy:
    """E.164 prefixes and ISO region codes (`*`: any) and SIP domains an SDK may dial; `region`
    reads national numbers (the caller ID's country; None: only +E.164 numbers are understood)."""

    allow: tuple[str, ...] = ()
    sip_domains: frozenset[str] = frozenset()
    region: str | None = None

    @classmethod
    def for_caller_id(cls, caller_id: str | None, allow: tuple[str, ...],
                      sip_domains: frozenset[str]) -> DialPolicy:
        """The policy for a caller ID (whose country national numbers are read in)."""
        return cls(allow=allow, sip_domains=frozenset(d.lower() for d in sip_domains),
                   region=_region(caller_id))

    def check(self, to: str) -> Allowed | Refused:
        """Whether an SDK caller may dial `to`, normalised, or why not."""
        if to.startswith("+") or _PHONE_RE.fullmatch(to):
            return self._number(to)
        scheme = _SCHEME_RE.match(to)
        if scheme is None:
            return Allowed(CLIENT, to)  # a bare identity
        name, rest = scheme.group(1), to[scheme.end():]
        if name == "sip":
            return self._sip(to)
        if name in (CLIENT, CONFERENCE):
            return Allowed(name, rest) if rest else Refused("malformed", f"{name}:****")
        return Refused("unknown_scheme", f"{name}:****")

    def _number(self, to: str) -> Allowed | Refused:
        # phonenumbers (1.1 MiB of a worker's memory) loads with the first number dialled or
        # the caller ID's region: a worker that only takes status callbacks never needs it.
        import phonenumbers

        invalid = Refused("invalid_number", mask_phone(re.sub(r"[^0-9+]", "", to)))
        if not _PHONE_RE.fullmatch(to):
            return invalid
        try:
            parsed = phonenumbers.parse(to, self.region)
        except phonenumbers.NumberParseException:
            return invalid
        if parsed.extension or not phonenumbers.is_valid_number(parsed):
            return invalid
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        refused = _refused_types().get(phonenumbers.number_type(parsed))
        if refused:
            return Refused(refused, mask_phone(e164))
        if not self._allows(parsed, e164):
            return Refused("prefix_not_allowed", mask_phone(e164))
        return Allowed(NUMBER, e164)

    def _allows(self, parsed: phonenumbers.PhoneNumber, e164: str) -> bool:
        """True when a valid number is under an allowed prefix or in an allowed region."""
        if ALLOW_ANY in self.allow:
            return True
        prefixes = tuple(entry for entry in self.allow if entry.startswith("+"))
        if prefixes and e164.startswith(prefixes):
            return True
        import phonenumbers

        # The region of the number itself: +1876 is Jamaica's, not the US's.
        return phonenumbers.region_code_for_number(parsed) in self.allow

    def _sip(self, to: str) -> Allowed | Refused:
        match = _SIP_RE.fullmatch(to)
        if match is None or not 0 < int(match.group("port") or 5060) < 65536:
            return Refused("malformed", "sip:****")
        host = match.group("host")
        if host.lower() not in self.sip_domains:
            return Refused("sip_domain_not_allowed", f"sip:****@{host}")
        if not _known_parameters(match.group("params")):
            return Refused("sip_parameter_not_allowed", f"sip:****@{host}")
        return Allowed(SIP, to)


def _known_parameters(params: str) -> bool:
    """True when every `;name=value` is a parameter of _SIP_PARAMS, each at most once."""
    seen: set[str] = set()
    for param in params.split(";")[1:]:
        name, _, value = param.partition("=")
        name, value = name.lower(), value.lower()
        pattern = _SIP_PARAMS.get(name)
        if pattern is None or name in seen or not pattern.fullmatch(value):
            return False
        seen.add(name)
    return True


def _region(caller_id: str | None) -> str | None:
    """The region a caller ID belongs to, for reading national numbers; None if there is none."""
    if not caller_id:
        return None
    import phonenumbers

    try:
        parsed = phonenumbers.parse(caller_id)
    except phonenumbers.NumberParseException:
        return None
    region = (phonenumbers.region_code_for_number(parsed)
              or phonenumbers.region_code_for_country_code(parsed.country_code or 0))
    # "001": a non-geographic code (satellite, UIFN): it has no national numbers.
    return region if region and region not in ("001", "ZZ") else None
