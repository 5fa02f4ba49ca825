import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.jsontext import MAX_DEPTH, depth, loads


def depth_one_character_at_a_time(text: str) -> int:
    """The nesting depth read the plain way: a quote opens or closes a string, a backslash in
    a string escapes the next character, a bracket outside a string opens or closes a level."""
    deepest = level = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='"\\[]{}a,:\n', max_size=60))
def test_depth_is_the_depth_read_one_character_at_a_time(text):
    assert depth(text) == depth_one_character_at_a_time(text)


@pytest.mark.parametrize("text, deepest", [
    ('{"state": {"batch": "2"}, "views": [{"params": {}}]}', 4),  # the request, its views, a view, its params
    ('["[[[", "\\"[["]', 1),  # brackets inside strings, an escaped quote among them
    ('"an open string [[[', 0),
    ('"ends in a backslash \\', 0),
    ('[[]][[[]]]', 3),
])
def test_depth_skips_strings(text, deepest):
    assert depth(text) == deepest


def test_a_text_nested_deeper_than_the_limit_is_refused_before_json_reads_it():
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValueError, match="nests deeper"):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_an_open_string_of_escaped_quotes_is_read_once_not_once_per_quote():
    # each escaped quote could start a string of its own if an open string were tried again
    # from every quote: this text would then take billions of steps, not one pass
    text = '"' + '\\"' * 50_000
    assert depth(text) == 0
    with pytest.raises(json.JSONDecodeError):
        loads(text)
