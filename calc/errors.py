"""The two errors an input can cause, both naming the field they are about.

The engine raises FieldError where one value is wrong (a size out of range, heads that do
not divide d_model); the parser gathers them into one InputError. Every reader of an
error — the inputs panel, the CLI, the browser entry — routes it by `field`, never by
reading the message.
"""

from __future__ import annotations

MAX_ECHO = 40
"""The most characters of a bad value a message repeats."""


def echo(value) -> str:
    """A bad value as a message quotes it: repr, cut to MAX_ECHO characters."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"


class FieldError(ValueError):
    """One field's value is wrong: `field` is its name in calc's vocabulary (d_model, batch)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class InputError(ValueError):
    """Bad inputs: `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
