"""What /notify refuses before anything reaches Twilio: malformed requests and content.

Which leg it picks is tested through the Notifier, in test_notifier.py.
"""

import json

import pytest

from services.errors import ContentTooLarge, ValidationFailed
from services.use_cases.notify import parse_request, serialize_content

PARENT = "CA" + "a" * 32


@pytest.mark.parametrize("body, fragment", [
    ([], "JSON object"),
    ({"content": {}}, "exactly one target"),
    ({"call_sid": PARENT, "identity": "a", "content": {}}, "exactly one target"),
    ({"call_sid": "CA123", "content": {}}, "call_sid"),
    ({"call_sid": "ca" + "a" * 32, "content": {}}, "call_sid"),
    ({"call_sid": PARENT, "leg": "both", "content": {}}, "leg"),
    ({"identity": "", "content": {}}, "identity"),
    ({"identity": 7, "content": {}}, "identity"),
    ({"call_sid": PARENT}, "content is required"),
    ({"call_sid": PARENT, "content": "not json"}, "does not hold JSON"),
    ({"call_sid": PARENT, "content": {}, "idempotency_key": 5}, "idempotency_key"),
    ({"call_sid": PARENT, "content": {}, "colour": "red"}, "Unknown field"),
])
def test_invalid_requests_are_refused(body, fragment):
    with pytest.raises(ValidationFailed) as err:
        parse_request(body)
    assert fragment in err.value.message


def test_content_is_compact_json_and_json_strings_pass_verbatim():
    assert serialize_content({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'
    assert serialize_content('{"already": "json"}') == '{"already": "json"}'
    assert serialize_content(None) == "null"
    assert json.loads(serialize_content([1, "x"])) == [1, "x"]


def test_content_limit_is_ten_thousand_characters():
    at_limit = "x" * (10_000 - 2)
    assert len(serialize_content(json.dumps(at_limit))) == 10_000
    with pytest.raises(ContentTooLarge) as err:
        serialize_content(json.dumps(at_limit + "x"))
    assert err.value.status == 413 and err.value.details["length"] == 10_001
