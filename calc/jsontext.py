"""JSON a reader (or a page) sends, read without trusting its depth.

Python's json module recurses once per nested array or object. Under Pyodide the
JavaScript stack runs out before Python's recursion limit does, and that is a fatal error
of the whole runtime, not a RecursionError: so the depth is measured first, in one pass.
"""

from __future__ import annotations

import json
import re

MAX_DEPTH = 64
"""The deepest nesting accepted (a config.json nests two or three deep)."""


_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[][{}]', re.DOTALL)
"""A string (its escapes inside it; one left open runs to the end of the text) or a bracket:
only these matter to the depth, and the rest of a text is passed over in one scan."""


def depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text, strings skipped."""
    deepest = level = 0
    for token in _TOKENS.findall(text):
        if token == "[" or token == "{":
            level += 1
            if level > deepest:
                deepest = level
        elif token == "]" or token == "}":
            level -= 1
    return deepest


def loads(text: str):
    """json.loads, after refusing a text that nests deeper than MAX_DEPTH (ValueError)."""
    if depth(text) > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    return json.loads(text)
