"""The dial policy: what an SDK caller's `To` may reach (toll fraud), decided without Flask."""

import pytest

from services.twilio.dial_policy import Allowed, DialPolicy, Refused

US = DialPolicy.for_caller_id("+15005550001", allow=("US",),
                              sip_domains=frozenset({"example.sip.twilio.com"}))
NANP = DialPolicy.for_caller_id("+15005550001", allow=("+1",), sip_domains=frozenset())
ANYWHERE = DialPolicy.for_caller_id("+15005550001", allow=("*",), sip_domains=frozenset())


@pytest.mark.parametrize("policy, to, expected", [
    # Numbers: normalised to E.164, a national number read in the caller ID's country.
    (US, "+1 (415) 555-2671", Allowed("number", "+14155552671")),
    (US, "14155552671", Allowed("number", "+14155552671")),
    (US, "(415) 555-2671", Allowed("number", "+14155552671")),
    # Personal numbers forward anywhere at their owner's rates: Twilio's +1500 test numbers are.
    (US, "+15005550006", Refused("personal_number", "+1500****006")),
    (ANYWHERE, "+447012345678", Refused("personal_number", "+4470****678")),  # UK 070
    (US, "+8821312345678", Refused("invalid_number", "+8821****678")),  # not a valid number
    (US, "+8823421234", Refused("prefix_not_allowed", "+8823****234")),  # satellite, valid
    (US, "+33612345678", Refused("prefix_not_allowed", "+3361****678")),
    (US, "+1 900 555 0100", Refused("premium_rate", "+1900****100")),
    (US, "1 (900) 555-0100", Refused("premium_rate", "+1900****100")),
    (US, "+1 555 123 4567", Refused("invalid_number", "+1555****567")),  # fictional 555-01xx
    (US, "12345", Refused("invalid_number", "12****")),
    (US, "+", Refused("invalid_number", "+****")),
    (US, "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0662\u0666\u0667\u0661",
     Refused("invalid_number", "+****")),  # Arabic-Indic digits, which phonenumbers would read
    (ANYWHERE, "+33612345678", Allowed("number", "+33612345678")),
    (ANYWHERE, "+8823421234", Allowed("number", "+8823421234")),
    (ANYWHERE, "+33 884 01 23 45", Refused("shared_cost", "+3388****345")),  # FR 0884
    (ANYWHERE, "+44 843 123 4567", Refused("premium_rate", "+4484****567")),  # UK 0843
    (ANYWHERE, "+4918012345", Refused("shared_cost", "+4918****345")),  # DE 0180
    (ANYWHERE, "+1 900 555 0100", Refused("premium_rate", "+1900****100")),
    # SIP: strict user@host[:port][;params], the host compared exactly.
    (US, "sip:bob@example.sip.twilio.com", Allowed("sip", "sip:bob@example.sip.twilio.com")),
    # Ports 1 to 65535.
    (US, "sip:bob@example.sip.twilio.com:1", Allowed("sip", "sip:bob@example.sip.twilio.com:1")),
    (US, "sip:bob@example.sip.twilio.com:65535",
     Allowed("sip", "sip:bob@example.sip.twilio.com:65535")),
    (US, "sip:bob@example.sip.twilio.com:0", Refused("malformed", "sip:****")),
    (US, "sip:bob@example.sip.twilio.com:65536", Refused("malformed", "sip:****")),
    (US, "sip:bob@Example.SIP.twilio.com:5061;transport=tls",
     Allowed("sip", "sip:bob@Example.SIP.twilio.com:5061;transport=tls")),
    (US, "sip:+14155552671@example.sip.twilio.com;user=phone;transport=TCP;edge=frankfurt",
     Allowed("sip", "sip:+14155552671@example.sip.twilio.com;user=phone;transport=TCP;"
                    "edge=frankfurt")),
    (US, "sip:bob@example.sip.twilio.com;region=ie1",
     Allowed("sip", "sip:bob@example.sip.twilio.com;region=ie1")),
    # maddr replaces the host the domain check passed (RFC 3261): refused, like any parameter
    # outside the list, a bad value, or one given twice.
    (US, "sip:bob@example.sip.twilio.com;maddr=premium.evil.example",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;MADDR=192.0.2.1",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;%6daddr=192.0.2.1",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;lr",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;transport=sctp",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;transport",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com;transport=tls;transport=udp",
     Refused("sip_parameter_not_allowed", "sip:****@example.sip.twilio.com")),
    (US, "sip:+15005550006@example.sip.twilio.com",
     Allowed("sip", "sip:+15005550006@example.sip.twilio.com")),
    (US, "sip:premium@evil.example;transport=tls?X-Evil=1",
     Refused("malformed", "sip:****")),
    (US, "sip:bob@example.sip.twilio.com?X-Evil=1", Refused("malformed", "sip:****")),
    (US, "sip:premium@evil.example", Refused("sip_domain_not_allowed", "sip:****@evil.example")),
    (US, "sip:bob@evil.example.sip.twilio.com",
     Refused("sip_domain_not_allowed", "sip:****@evil.example.sip.twilio.com")),
    (US, "sip:bob@example.sip.twilio.com.evil.example",
     Refused("sip_domain_not_allowed", "sip:****@example.sip.twilio.com.evil.example")),
    (US, "sip:example.sip.twilio.com", Refused("malformed", "sip:****")),  # no user
    (US, "sip:bob:pw@example.sip.twilio.com", Refused("malformed", "sip:****")),
    (US, "sip:bob@example.sip.twilio.com:99999", Refused("malformed", "sip:****")),
    (US, "sip:bob@example.sip.twilio.com\nX", Refused("malformed", "sip:****")),
    (ANYWHERE, "sip:bob@example.sip.twilio.com",
     Refused("sip_domain_not_allowed", "sip:****@example.sip.twilio.com")),
    # SDK to SDK, and conferences (rendered by the TwiML), are not the policy's to refuse.
    (US, "client:bob", Allowed("client", "bob")),
    (US, "bob", Allowed("client", "bob")),
    (US, "conference:standup", Allowed("conference", "standup")),
    (US, "sips:bob@example.sip.twilio.com", Refused("unknown_scheme", "sips:****")),
    (US, "tel:+19005550100", Refused("unknown_scheme", "tel:****")),
    (US, "client:", Refused("malformed", "client:****")),
])
def test_destinations(policy, to, expected):
    assert policy.check(to) == expected


def test_without_a_caller_id_or_allow_list_no_number_is_dialable():
    closed = DialPolicy.for_caller_id(None, allow=(), sip_domains=frozenset())
    assert closed.check("+14155552671") == Refused("prefix_not_allowed", "+1415****671")
    assert closed.check("4155552671") == Refused("invalid_number", "41555****671")
    assert closed.check("client:bob") == Allowed("client", "bob")


def test_a_national_number_is_read_in_the_caller_ids_country():
    uk = DialPolicy.for_caller_id("+442079460000", allow=("+44",), sip_domains=frozenset())
    assert uk.check("020 7946 0000") == Allowed("number", "+442079460000")
    assert uk.check("0843 123 4567") == Refused("premium_rate", "+4484****567")
    assert uk.check("00 1 415 555 2671") == Refused("prefix_not_allowed", "+1415****671")


@pytest.mark.parametrize("number, region", [
    ("+18765230123", "JM"), ("+18092345678", "DO"), ("+12644612345", "AI"),
    ("+12842291234", "VG"), ("+16497121234", "TC"), ("+12423456789", "BS"),
    ("+15062345678", "CA"), ("+17872345678", "PR"),
])
def test_the_us_region_is_not_the_rest_of_the_nanp(number, region):
    """+1 numbers outside the US (the Caribbean's toll-fraud classics among them) are refused
    by a US policy; the prefix +1 lets every NANP country in; their own region, only them."""
    masked = number[:5] + "****" + number[-3:]
    assert US.check(number) == Refused("prefix_not_allowed", masked)
    assert NANP.check(number) == Allowed("number", number)
    alone = DialPolicy.for_caller_id("+15005550001", allow=(region,), sip_domains=frozenset())
    assert alone.check(number) == Allowed("number", number)
    assert alone.check("+12015550123").reason == "prefix_not_allowed"  # type: ignore[union-attr]


def test_regions_and_prefixes_mix():
    policy = DialPolicy.for_caller_id("+15005550001", allow=("CA", "+44", "US"),
                                      sip_domains=frozenset())
    for number in ("+12015550123", "+15062345678", "+441212345678"):
        assert policy.check(number) == Allowed("number", number)
    assert policy.check("+18765230123").reason == "prefix_not_allowed"  # type: ignore[union-attr]
    assert policy.check("+33612345678").reason == "prefix_not_allowed"  # type: ignore[union-attr]


def test_prefixes_narrower_than_a_country():
    bay = DialPolicy.for_caller_id("+15005550001", allow=("+1415", "+1650"),
                                   sip_domains=frozenset())
    assert bay.check("+14155552671") == Allowed("number", "+14155552671")
    assert bay.check("+12125551234").reason == "prefix_not_allowed"  # type: ignore[union-attr]


def test_a_caller_id_in_an_unassigned_range_still_reads_numbers_in_its_country():
    # +1 200 is no area code: the number belongs to no region, but its calling code (+1) is
    # the US's main one, so national numbers are still read as US numbers.
    policy = DialPolicy.for_caller_id("+12005550100", allow=("US",), sip_domains=frozenset())
    assert policy.check("4155552671") == Allowed("number", "+14155552671")
    uk = DialPolicy.for_caller_id("+449995550000", allow=("GB",), sip_domains=frozenset())
    assert uk.check("020 7946 0000") == Allowed("number", "+442079460000")


def test_a_non_geographic_caller_id_reads_no_national_number():
    # +800 (UIFN) belongs to no country: a national number means nothing next to it.
    policy = DialPolicy.for_caller_id("+80012345678", allow=("*",), sip_domains=frozenset())
    assert policy.check("4155552671") == Refused("invalid_number", "41555****671")
    assert policy.check("+14155552671") == Allowed("number", "+14155552671")
