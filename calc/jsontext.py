"""JSON a reader (or a page) sends, read without trusting its depth.

Python's json module recurses once per nested array or object. Under Pyodide the
JavaScript stack runs out before Python's recursion limit does, and that is a fatal error
of the whole runtime, not a RecursionError: so the depth is measured first, in one pass.
"""

from __future__ import annotations

import json

MAX_DEPTH = 64
"""The deepest nesting accepted (a config.json nests two or three deep)."""


def depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text, strings skipped."""
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


def loads(text: str):
    """json.loads, after refusing a text that nests deeper than MAX_DEPTH (ValueError)."""
    if depth(text) > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    return json.loads(text)
