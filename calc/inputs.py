"""Reader inputs as strings (a form's fields, a URL's query, a page directive, the CLI's
flags) to validated Inputs, with one message per field that is wrong.

Every field is declared in calc.fields; this module only applies the registry: each
present field is parsed by its kind, the shape and setups are built, and any FieldError
the engine raises is kept under its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Mapping

from calc.activations import activation_table, check_implementation
from calc.errors import FieldError, InputError
from calc.fields import BY_NAME, COMPARE_DEFAULTS, DEFAULT_TEXT, FIELDS
from calc.gpus import GPUS
from calc.hf_config import config_model_type, config_name
from calc.layout.frameworks import check_framework
from calc.layout.solver import FSDP_STAGES, Question
from calc.layout.split import check_layout
from calc.presets import PRESETS
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.units import in_unit, parse_size, size_text

DEFAULT_SETUP = TrainingSetup()


@dataclass(frozen=True)
class Claim:
    """A figure to explain: `nbytes` as typed in `unit` ('2265 MB' keeps MB), per
    sequence or for the batch (`scope`)."""

    text: str
    nbytes: int
    unit: str
    scope: str


@dataclass(frozen=True)
class Inputs:
    """Everything a view needs: the model, the step (and setup B to compare with it), the
    GPU budget in bytes, the unit shown, a claimed figure, and the config.json text the
    shape came from (if any)."""

    preset: str
    shape: ModelShape
    setup: TrainingSetup
    budget: int
    unit: str
    compare: TrainingSetup
    claim: Claim
    hf_config: str = ""
    gpu: str = "custom"
    reserve: int = 0
    question: Question = Question()
    fragmentation: Fraction = Fraction(0)

    @property
    def model_name(self) -> str:
        """The model as a sentence names it: the preset's name, or the pasted config's
        ("Qwen2ForCausalLM, from a qwen2 config.json")."""
        if self.hf_config:
            return f"{config_name(self.hf_config)}, from a {config_model_type(self.hf_config)} config.json"
        return self.preset

    @property
    def cache_headroom(self) -> int:
        """Bytes of the card kept free for the allocator's cache; none for a typed budget,
        which is memory for tensors."""
        return 0 if self.gpu == "custom" else cache_share(GPUS[self.gpu].nbytes, self.fragmentation)

    @property
    def unit_bytes(self) -> int:
        return 10**9 if self.unit == "GB" else 2**30

    @property
    def budget_label(self) -> str:
        """The memory a step may use, as a sentence names it: '80 GB', or 'an H100 80GB
        (84.447 GB after the reserve)'."""
        usable = in_unit(self.budget, self.unit, trim=True)
        if self.gpu == "custom":
            return usable
        gpu = GPUS[self.gpu]
        cache = " and the allocator's cache" if self.cache_headroom else ""
        return f"{gpu.article} {gpu.name} ({usable} after the reserve{cache})"


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
    values: dict[str, object] = {}
    config_text = str(params.get("hf_config", "")).strip()
    if config_text:  # a pasted config.json stands for the fields it sets; fields set as well win
        try:
            params = {**BY_NAME["hf_config"].parse(config_text), **{k: v for k, v in params.items() if k != "hf_config"}}
        except FieldError as e:
            errors[e.field] = e.message
    for field in FIELDS:
        if field.kind == "json":
            continue
        text = params[field.name] if field.name in params else DEFAULT_TEXT.get(field.name)
        if text is None:
            continue
        try:
            values[field.name] = _field_value(field.name, text)
        except FieldError as e:
            errors[e.field] = e.message
            continue
        if field.kind == "size" and field.target == "setup":  # a setup holds the bytes alone
            values[field.name] = values[field.name][0]

    if values.get("finetune") in ("lora", "qlora") and "attention" not in params:  # transformers' default, SDPA
        values["attention"] = "flash"
    if values.get("finetune") == "qlora" and "dtype" not in params:  # QLoRA computes in bf16 over a bf16 base
        values["dtype"] = "bf16-master"

    gpu = "custom" if "budget" in params and "gpu" not in params else values.get("gpu", DEFAULT_TEXT["gpu"])
    if "arch" not in params:  # the card's own, unless the reader names another
        values["arch"] = card_arch(gpu)

    fsdp = values.pop("fsdp", "")
    if fsdp:  # FSDP's name for a ZeRO stage
        if "zero" in params and values.get("zero") != FSDP_STAGES[fsdp]:
            errors["fsdp"] = f"fsdp {fsdp} is ZeRO stage {FSDP_STAGES[fsdp]}, but zero is {params['zero']}: give one"
        values["zero"] = FSDP_STAGES[fsdp]

    def build(make, target: str, name_of=lambda f: f.attribute):
        """`make(**changes)` from the fields of `target`; its FieldError kept by field."""
        changes = {f.attribute: values[f.name] for f in FIELDS if f.target == target and f.name in values}
        if target == "setup" and "zero" in values:  # set by the fsdp alias, which targets the inputs
            changes["zero"] = values["zero"]
        try:
            return make(**changes)
        except FieldError as e:
            name = name_of(BY_NAME.get(e.field) or BY_NAME["preset"])
            errors.setdefault(name if name in BY_NAME else _setup_b_field(e.field, params), e.message)
            return None

    preset = values.get("preset", DEFAULT_TEXT["preset"])
    shape = build(PRESETS[preset].replace, "shape") if "preset" not in errors else None
    setup = build(DEFAULT_SETUP.replace, "setup")
    question = build(Question().replace, "question")
    compare = None
    if shape is not None and setup is not None:
        try:
            check_setup(shape, setup)
        except FieldError as e:
            errors.setdefault(e.field, e.message)
    if setup is not None and shape is not None and not errors:  # setup B, once setup A is sound
        compare = build(compare_base(shape, setup).replace, "compare", name_of=lambda f: "b_" + f.attribute)
        if compare is not None:
            try:
                check_setup(shape, compare)
            except FieldError as e:
                errors.setdefault(_setup_b_field(e.field, params), e.message)
    if errors:
        raise InputError(errors)
    reserve = values["reserve"][0]
    fragmentation = values["fragmentation"]
    budget = values["budget"][0]
    if gpu != "custom":
        total = GPUS[gpu].nbytes
        budget = total - reserve - cache_share(total, fragmentation)
        if budget < 1:
            raise InputError({"reserve": f"reserve and fragmentation must leave some of the {GPUS[gpu].name}'s "
                                         f"{GPUS[gpu].mib:,} MiB"})
    _check_gpu_fields(values, params, gpu, budget)
    claim_bytes, claim_unit = values["claim"]
    claim_text = str(params.get("claim", DEFAULT_TEXT["claim"])).strip()
    return Inputs(preset, shape, setup, budget, values["unit"], compare,
                  Claim(claim_text, claim_bytes, claim_unit, values["claim_scope"]), config_text, gpu, reserve, question,
                  fragmentation)


def _field_value(name: str, text) -> object:
    """Field `name`'s value for `text` (Field.parse), remembered: an edit changes one field
    and the page's request sends them all again."""
    try:
        return _field_value_remembered(name, text)
    except TypeError:  # a text that cannot be a key (not from a page)
        return BY_NAME[name].parse(text)


@lru_cache(maxsize=1024)
def _field_value_remembered(name: str, text) -> object:
    return BY_NAME[name].parse(text)


def cache_share(total: int, percent: Fraction) -> int:
    """`percent` of a card's `total` bytes, rounded down: what is kept free for the caching
    allocator's cache."""
    return total * percent.numerator // (100 * percent.denominator)


def check_setup(shape: ModelShape, setup: TrainingSetup) -> None:
    """FieldError, naming the field, for a step calc cannot answer: an implementation
    without measured rows for it, an attention kernel not derived, a layout that cannot
    split the model. Run on the reader's setups before any view, so no view meets one."""
    check_implementation(shape, setup)
    activation_table(shape, setup)
    if setup.parallel:
        check_layout(shape, setup)  # the layout's sizes first, then what its framework runs
    check_framework(setup)


def _setup_b_field(field: str, params: Mapping[str, str]) -> str:
    """The field of setup B to name for an error about it: b_<field> where setup B has that
    field; for another (of the model or the layout, which setup A accepts), the first of
    B's fields the reader set, whose choice brought it about."""
    if "b_" + field in BY_NAME:
        return "b_" + field
    chosen = [f.name for f in FIELDS if f.target == "compare" and f.name in params]
    return chosen[0] if chosen else "b_accounting"


def _check_gpu_fields(values: dict, params: Mapping[str, str], gpu: str, budget: int) -> None:
    """A budget belongs to another card, a reserve and the allocator's share to a named one:
    each given with the other kind of card, and not what that card implies, is an error,
    not dropped."""
    errors = {}
    if gpu != "custom" and "budget" in params and values["budget"][0] != budget:
        errors["budget"] = (f"budget is the memory of another card (gpu custom); the {GPUS[gpu].name}'s is its own "
                            f"({budget_text(budget)} after the reserve): leave budget out, or choose gpu custom")
    if gpu == "custom":
        for name in ("reserve", "fragmentation"):
            if name in params and BY_NAME[name].text(_value_of(name, values)) != _default_text(name):
                errors[name] = (f"{name} is taken off a named card's memory; a budget (gpu custom) is already the "
                                "memory for allocated blocks: leave it out, or choose a card")
    if errors:
        raise InputError(errors)


def _value_of(name: str, values: dict):
    return budget_text(values[name][0]) if BY_NAME[name].kind == "size" else values[name]


def _default_text(name: str) -> str:
    """The default of a field that sets neither the shape nor a setup, as its input shows it:
    a size as budget_text writes it (the claim as typed), anything else as the field writes it."""
    field = BY_NAME[name]
    if field.kind == "size" and name != "claim":
        return budget_text(parse_size(DEFAULT_TEXT[name]))
    return field.text(field.parse(DEFAULT_TEXT[name])) if field.kind == "percent" else DEFAULT_TEXT[name]


def card_arch(gpu: str) -> str:
    """The compute capability of the card `gpu` names; for another card, calc's default."""
    return GPUS[gpu].arch if gpu in GPUS else DEFAULT_SETUP.arch


def compare_base(shape: ModelShape, setup: TrainingSetup) -> TrainingSetup:
    """Setup B before the reader's b_* fields: setup A with each of COMPARE_DEFAULTS that
    the model's implementation has (a from-scratch model has no flash attention). Which
    of them it has does not depend on the batch (worked out for one sequence, remembered)."""
    return _compare_base(shape, setup.replace(batch=1)).replace(batch=setup.batch)


@lru_cache(maxsize=256)
def _compare_base(shape: ModelShape, setup: TrainingSetup) -> TrainingSetup:
    base = setup
    for name, value in COMPARE_DEFAULTS.items():
        try:
            candidate = base.replace(**{name: value})
            check_setup(shape, candidate)
        except FieldError:
            continue
        base = candidate
    return base


def budget_text(nbytes: int) -> str:
    """A budget as the reader would type it: '80 GB', '80 GiB', '512 MiB', or exact bytes."""
    return size_text(nbytes)


def field_values(inputs: Inputs) -> dict[str, str]:
    """Every field's value as the string its input shows."""
    out = {}
    for field in FIELDS:
        out[field.name] = field.text(_value(inputs, field.name))
    return out


def _value(inputs: Inputs, name: str):
    field = BY_NAME[name]
    if field.target == "shape":
        return getattr(inputs.shape, name)
    if field.target == "setup":
        return getattr(inputs.setup, name)
    if field.target == "compare":
        return getattr(inputs.compare, field.attribute)
    if field.target == "question":
        return getattr(inputs.question, field.attribute)
    return {"preset": inputs.preset, "fsdp": "", "budget": budget_text(inputs.budget), "unit": inputs.unit,
            "claim": inputs.claim.text, "claim_scope": inputs.claim.scope, "hf_config": inputs.hf_config,
            "gpu": inputs.gpu, "reserve": budget_text(inputs.reserve), "fragmentation": inputs.fragmentation}[name]


def inputs_to_params(inputs: Inputs) -> dict[str, str]:
    """The string parameters that give back `inputs`, leaving out what equals the preset or
    the defaults (so a shared link stays short). Setup B's defaults follow setup A."""
    defaults = {"shape": PRESETS[inputs.preset], "setup": DEFAULT_SETUP,
                "compare": compare_base(inputs.shape, inputs.setup), "question": Question()}
    out = {}
    for field in FIELDS:
        if not field.in_link or (field.name == "budget" and inputs.gpu != "custom"):  # a card's budget follows from it
            continue
        value = _value(inputs, field.name)
        if field.name == "arch":
            default = card_arch(inputs.gpu)
        elif field.target in defaults:
            default = getattr(defaults[field.target], field.attribute)
            if type(value) is type(default) and value == default:  # the same value shows the same text
                continue
            default = field.text(default)
        else:
            default = _default_text(field.name)
        shown = field.text(value)
        if shown != default:
            out[field.name] = shown
    return out
