"""The terminal command that prints a page's answer for the reader's own inputs.

Every input the reader set, as the link carries it (calc.inputs.inputs_to_params: what
differs from the preset and calc's defaults), becomes its flag; the command ends with
what to print: the summary, or the solver's answer (--solve).
"""

from __future__ import annotations

import shlex

from calc.fields import BY_NAME
from calc.inputs import Inputs, inputs_to_params

ACTIONS = {"summary": (), "solve": ("--solve",)}
"""What the command prints, by the name a page pins: the summary, or the solver's answer."""
WIDTH = 88
"""The longest line of the command, in characters, before a backslash continues it."""


def command_line(inputs: Inputs, action: str = "summary") -> str:
    """`python -m calc` with the inputs' flags, broken into lines of at most WIDTH
    characters (a flag and its value never apart)."""
    params = inputs_to_params(inputs)
    if action == "solve" and "zero" in params and "solve_zero" not in params:
        params["solve_zero"] = "any"  # with --solve, --zero alone is the stage the answer must use
    words = [f"{BY_NAME[name].flag} {shlex.quote(value)}" for name, value in params.items()] + list(ACTIONS[action])
    lines, line = [], "python -m calc"
    for word in words:
        if len(line) + 1 + len(word) > WIDTH:
            lines.append(line + " \\")
            line = "  " + word
        else:
            line += " " + word
    return "\n".join([*lines, line])
