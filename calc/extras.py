"""Inputs beyond one setup: a second setup to compare (fields b_*) and a claimed figure
to explain (claim, claim_scope). Parsed from the same string parameters as calc.inputs."""

from __future__ import annotations

from calc.inputs import SETUP_CHOICES, InputError, Inputs, _whole
from calc.setup import MAX_BATCH
from calc.units import parse_size

COMPARE_DEFAULTS = {"dtype": "bf16", "attention": "flash", "checkpoint": "block"}
"""Setup B starts as A with bf16, flash attention and per-block checkpointing."""
COMPARE_FIELDS = ("b_batch", *(f"b_{name}" for name in SETUP_CHOICES))
CLAIM_DEFAULT = "2.265 GB"
CLAIM_SCOPES = ("sequence", "batch")
CLAIM_FIELDS = ("claim", "claim_scope")


def compare_setup(inputs: Inputs, params: dict):
    """Setup B: setup A with COMPARE_DEFAULTS, then any b_* parameter."""
    errors: dict[str, str] = {}
    changes = dict(COMPARE_DEFAULTS)
    if "b_batch" in params:
        batch = _whole("b_batch", params["b_batch"], errors, MAX_BATCH)
        if batch is not None:
            changes["batch"] = batch
    for name, allowed in SETUP_CHOICES.items():
        key = f"b_{name}"
        if key in params:
            if params[key] in allowed:
                changes[name] = params[key]
            else:
                errors[key] = f"{key} must be one of {', '.join(allowed)}"
    if errors:
        raise InputError(errors)
    return inputs.setup.replace(**changes)


def claim(params: dict) -> tuple[int, str, str]:
    """(bytes, unit as typed, scope) of the claimed figure; InputError naming the field."""
    text = str(params.get("claim", CLAIM_DEFAULT))
    scope = str(params.get("claim_scope", "sequence"))
    errors = {}
    try:
        nbytes = parse_size(text)
    except ValueError as e:
        errors["claim"] = str(e)
    if scope not in CLAIM_SCOPES:
        errors["claim_scope"] = f"claim_scope must be one of {', '.join(CLAIM_SCOPES)}"
    if errors:
        raise InputError(errors)
    unit = "GiB" if text.strip().endswith("GiB") else "MiB" if text.strip().endswith("MiB") else "GB"
    return nbytes, unit, scope


def validate_extras(params: dict, inputs: Inputs | None) -> dict[str, str]:
    """Messages for bad b_* and claim fields (empty when they are fine)."""
    errors: dict[str, str] = {}
    if inputs is not None:
        try:
            compare_setup(inputs, params)
        except InputError as e:
            errors.update(e.errors)
    try:
        claim(params)
    except InputError as e:
        errors.update(e.errors)
    return errors


def extra_values(inputs: Inputs, params: dict) -> dict[str, str]:
    """The b_* and claim fields as the inputs show them."""
    b = compare_setup(inputs, params)
    values = {f"b_{k}": str(v) for k, v in b.as_dict().items()}
    values["claim"] = str(params.get("claim", CLAIM_DEFAULT))
    values["claim_scope"] = str(params.get("claim_scope", "sequence"))
    return values


def extra_params(inputs: Inputs, params: dict) -> dict[str, str]:
    """The short form of the extra fields for the URL: only what differs from the defaults."""
    out = {}
    defaults = inputs.setup.replace(**COMPARE_DEFAULTS).as_dict()
    for k, v in compare_setup(inputs, params).as_dict().items():
        if v != defaults[k]:
            out[f"b_{k}"] = str(v)
    if str(params.get("claim", CLAIM_DEFAULT)).strip() != CLAIM_DEFAULT:
        out["claim"] = str(params["claim"]).strip()
    if params.get("claim_scope", "sequence") != "sequence":
        out["claim_scope"] = params["claim_scope"]
    return out
