"""What counts as strict JSON (RFC 8259) here: the rules, each with a case either side."""

from __future__ import annotations

import pytest

from services import strict_json


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    None, True, False, 0, -0.0, 1.5e308, -(10 ** 308), 2 ** 1023, "h\u00e9llo \U0001F600",
    {"k": [1, {"deep": None}]}, nested(64), {"": ""},
])
def test_strict_values_pass(value):
    assert strict_json.problem(value) is None
    assert strict_json.loads(strict_json.dumps(value)) == value


@pytest.mark.parametrize("value, why", [
    (float("nan"), "NaN"), (float("inf"), "Infinity"), ([float("-inf")], "Infinity"),
    (2 ** 1024, "double"), (-(10 ** 400), "double"), ("\ud800", "surrogate"),
    ({"\udfff": 1}, "surrogate"), (nested(65), "deeper than 64"), ((1, 2), "tuple"),
])
def test_values_a_strict_parser_refuses_are_named(value, why):
    assert why in (strict_json.problem(value) or "")
    with pytest.raises(strict_json.NotStrictJSON):
        strict_json.dumps(value)


@pytest.mark.parametrize("text, not_json", [
    ("NaN", False), ("[Infinity]", False), ("1e999", False), ('"\\ud800"', False),
    ("[" * 3000 + "]" * 3000, False), ("{", True), ("", True), ("1" * 5000, True),
])
def test_text_that_is_not_strict_json_is_refused_saying_whether_it_is_json_at_all(text,
                                                                                  not_json):
    with pytest.raises(strict_json.NotStrictJSON) as refused:
        strict_json.loads(text)
    assert isinstance(refused.value, strict_json.NotJSON) is not_json


def test_clean_text_replaces_lone_surrogates_only():
    assert strict_json.clean_text("a\ud800b\U0001F600") == "a\ufffdb\U0001F600"
    assert strict_json.clean_text("plain") == "plain"
