"""Reader inputs as strings (a widget's fields, a URL's query, a page directive) to a
validated shape and setup, with one message per field that is wrong.

One vocabulary everywhere: the dataclass field `d_model` is the CLI's `--d-model` and the
URL's `?d_model=`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

from calc.presets import DEFAULT_PRESET, PRESETS
from calc.report import DEFAULT_BUDGET
from calc.setup import (ACCOUNTINGS, ATTENTION_KINDS, CHECKPOINT_KINDS, DTYPES, MAX_BATCH, MAX_PARALLEL, OPTIMIZERS,
                        TrainingSetup)
from calc.shape import MAX_SIZE, ModelShape
from calc.units import parse_size

SHAPE_SIZES = ("vocab", "context", "layers", "d_model", "heads", "kv_heads", "d_ff")
SHAPE_CHOICES = {"ffn": ("swiglu", "gelu"), "norm": ("rmsnorm", "layernorm"), "positions": ("rope", "learned")}
SHAPE_FLAGS = ("bias", "tied")
SETUP_CHOICES = {"accounting": ACCOUNTINGS, "attention": ATTENTION_KINDS, "checkpoint": CHECKPOINT_KINDS,
                 "dtype": DTYPES, "optimizer": OPTIMIZERS}
UNITS = ("GB", "GiB")
PARALLEL_SIZES = ("dp", "tp", "pp", "microbatches")
FIELDS = ("preset", *SHAPE_SIZES, *SHAPE_CHOICES, *SHAPE_FLAGS, "batch", *SETUP_CHOICES, *PARALLEL_SIZES, "zero", "sp",
          "budget", "unit")

_WHOLE = re.compile(r"[0-9][0-9_,]*")


@dataclass(frozen=True)
class Inputs:
    """Everything a view needs: the model, the step, the GPU budget (bytes), the unit."""

    preset: str
    shape: ModelShape
    setup: TrainingSetup
    budget: int = DEFAULT_BUDGET
    unit: str = "GB"

    @property
    def unit_bytes(self) -> int:
        return 10**9 if self.unit == "GB" else 2**30


class InputError(ValueError):
    """Bad inputs; `errors` maps each field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _whole(field: str, text: str, errors: dict, limit: int):
    text = str(text).strip()
    if not _WHOLE.fullmatch(text):
        errors[field] = f"{field} must be a whole number, not {text!r}" if text else f"{field} needs a whole number"
        return None
    value = int(text.replace(",", "").replace("_", ""))
    if value < 1 or value > limit:
        errors[field] = f"{field} must be between 1 and {limit:,}"
        return None
    return value


def _choice(field: str, text, allowed, errors: dict):
    """`text` if it is one of `allowed`, else None and a message for `field`."""
    if text in allowed:
        return text
    errors[field] = f"{field} must be one of {', '.join(allowed)}"
    return None


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _flag(field: str, text, errors: dict):
    """True or False from 'true'/'false' (and yes/no, on/off, 1/0), else None and a message."""
    text = str(text).strip().lower()
    if text in _TRUE + _FALSE:
        return text in _TRUE
    errors[field] = f"{field} must be true or false"
    return None


def _collect(params: Mapping[str, str], errors: dict, parsers: dict) -> dict:
    """Each present field parsed by its parser; fields that fail are left out (and reported)."""
    out = {}
    for field, parse in parsers.items():
        if field in params:
            value = parse(field, params[field], errors)
            if value is not None:
                out[field] = value
    return out


def parse_inputs(params: Mapping[str, str]) -> Inputs:
    """Validated Inputs from string parameters; unknown keys are ignored, missing ones take
    the preset's (or the default) value. Raises InputError naming every bad field.

    A page asks for the same parameters once per view at every recompute: each set is
    parsed once (Inputs are immutable; an InputError is raised afresh each time)."""
    try:
        return _parse_remembered(tuple(sorted(params.items())))
    except TypeError:  # a value that cannot be a key (not from a page): parse it directly
        return _parse(params)


@lru_cache(maxsize=256)
def _parse_remembered(items: tuple) -> Inputs:
    return _parse(dict(items))


def forget_parsed() -> None:
    """Empty the memory of parsed parameters."""
    _parse_remembered.cache_clear()


def _parse(params: Mapping[str, str]) -> Inputs:
    errors: dict[str, str] = {}
    name = str(params.get("preset", DEFAULT_PRESET)).strip() or DEFAULT_PRESET
    if name not in PRESETS:
        errors["preset"] = f"unknown preset {name!r}"
        name = DEFAULT_PRESET
    size = lambda limit: lambda f, t, e: _whole(f, t, e, limit)  # noqa: E731
    choice = lambda allowed: lambda f, t, e: _choice(f, t, allowed, e)  # noqa: E731
    changes = _collect(params, errors, {**{f: size(MAX_SIZE) for f in SHAPE_SIZES},
                                        **{f: choice(a) for f, a in SHAPE_CHOICES.items()},
                                        **{f: _flag for f in SHAPE_FLAGS}})
    setup_values = _collect(params, errors, {"batch": size(MAX_BATCH),
                                             **{f: choice(a) for f, a in SETUP_CHOICES.items()},
                                             **{f: size(MAX_PARALLEL) for f in PARALLEL_SIZES},
                                             "zero": lambda f, t, e: int(t) if _choice(f, str(t).strip(), ("0", "1", "2", "3"), e) else None,
                                             "sp": _flag})
    budget = DEFAULT_BUDGET
    if "budget" in params:
        try:
            budget = parse_size(params["budget"])
        except ValueError as e:
            errors["budget"] = str(e)
    unit = str(params.get("unit", "GB"))
    if unit not in UNITS:
        errors["unit"] = "unit must be GB or GiB"
        unit = "GB"
    shape = None
    if not errors:
        try:
            shape = PRESETS[name].replace(**changes)
        except ValueError as e:
            field = str(e).split(" ", 1)[0]
            errors[field if field in FIELDS else "preset"] = str(e)
    setup = None
    if not errors:
        try:
            setup = TrainingSetup(**setup_values)
            if setup.parallel:
                from calc.parallel import check_layout

                check_layout(shape, setup)
        except ValueError as e:
            field = str(e).split(" ", 1)[0]
            errors[field if field in FIELDS else "tp"] = str(e)
    if errors:
        raise InputError(errors)
    return Inputs(name, shape, setup, budget, unit)


def budget_text(nbytes: int) -> str:
    """A budget as the reader would type it: '80 GB', '80 GiB', or exact bytes."""
    for unit, size in (("GiB", 2**30), ("GB", 10**9)):
        if nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} B"


def field_values(inputs: Inputs) -> dict[str, str]:
    """Every field's value as the string an input shows."""
    values = {"preset": inputs.preset, "budget": budget_text(inputs.budget), "unit": inputs.unit}
    for field, value in {**inputs.shape.as_dict(), **inputs.setup.as_dict()}.items():
        values[field] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def inputs_to_params(inputs: Inputs) -> dict[str, str]:
    """The string parameters that give back `inputs`, leaving out what equals the preset or
    the defaults (so a shared link stays short)."""
    out = {"preset": inputs.preset} if inputs.preset != DEFAULT_PRESET else {}
    base = PRESETS[inputs.preset]
    for field in (*SHAPE_SIZES, *SHAPE_CHOICES, *SHAPE_FLAGS):
        value = getattr(inputs.shape, field)
        if value != getattr(base, field):
            out[field] = str(value).lower() if isinstance(value, bool) else str(value)
    default = TrainingSetup()
    for field in ("batch", *SETUP_CHOICES, *PARALLEL_SIZES, "zero", "sp"):
        value = getattr(inputs.setup, field)
        if value != getattr(default, field):
            out[field] = str(value).lower() if isinstance(value, bool) else str(value)
    if inputs.budget != DEFAULT_BUDGET:
        out["budget"] = budget_text(inputs.budget)
    if inputs.unit != "GB":
        out["unit"] = inputs.unit
    return out
