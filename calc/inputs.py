"""Reader inputs as strings (a form's fields, a URL's query, a page directive, the CLI's
flags) to validated Inputs, with one message per field that is wrong.

Every field is declared in calc.fields; this module only applies the registry: each
present field is parsed by its kind, the shape and setups are built, and any FieldError
the engine raises is kept under its field.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache, partial
from operator import attrgetter
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
FINETUNE_DEFAULTS = {"lora": {"attention": "flash"}, "qlora": {"attention": "flash", "dtype": "bf16-master"}}
"""The setup's fields that a way of fine-tuning sets where the reader sets none: peft's LoRA
runs over transformers' default attention, SDPA; QLoRA computes in bf16 over a bf16 base."""


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

    def at_batch(self, batch: int, b_batch: int) -> "Inputs":
        """These inputs with `batch` sequences per step in setup A and `b_batch` in setup B.
        No check of either reads the other fields, nor any other field's the batch."""
        copy = object.__new__(Inputs)
        copy.__dict__.update(self.__dict__, setup=self.setup.replace(batch=batch),
                             compare=self.compare.replace(batch=b_batch))
        return copy

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
    parsed once (Inputs are immutable; an InputError is raised afresh each time). A
    reader's edits mostly change the batch: the other fields are parsed once for every
    batch, then the batch is set alone."""
    try:
        if "batch" in params:
            return _parse_with_batch(params)
        return _parse_remembered(tuple(sorted(params.items())))
    except TypeError:  # a value that cannot be a key (not from a page): parse it directly
        return _parse(params)


def _parse_with_batch(params: Mapping[str, str]) -> Inputs:
    """parse_inputs of `params`, which set the batch: the other fields parsed (and
    remembered) without it, then the batch set in setup A, and in setup B where B's follows
    A's. Any error: the whole of `params` parsed at once, which names every bad field."""
    try:
        batch = _field_value("batch", params["batch"])
        rest = _parse_remembered(tuple(sorted((k, v) for k, v in params.items() if k != "batch")))
    except (FieldError, InputError):
        return _parse_remembered(tuple(sorted(params.items())))
    return rest.at_batch(batch, rest.compare.batch if "b_batch" in params else batch)


@lru_cache(maxsize=256)
def _parse_remembered(items: tuple) -> Inputs:
    return _parse(dict(items))


def forget_parsed() -> None:
    """Empty the memory of parsed parameters (and of their texts and links)."""
    _parse_remembered.cache_clear()
    _field_values.cache_clear()
    _inputs_to_params.cache_clear()


def _parse(params: Mapping[str, str]) -> Inputs:
    errors: dict[str, str] = {}
    values = dict(_parsed_defaults())
    config_text = str(params.get("hf_config", "")).strip()
    unread_config = False  # a pasted config calc cannot read: the model is unknown, so nothing is checked against it
    if config_text:  # a pasted config.json stands for the fields it sets; fields set as well win
        try:
            params = {**BY_NAME["hf_config"].parse(config_text), **{k: v for k, v in params.items() if k != "hf_config"}}
        except FieldError as e:
            errors[e.field] = e.message
            unread_config = True
    for name in sorted(params.keys() & _VALUE_FIELDS, key=_FIELD_ORDER.__getitem__):  # errors in the panel's order
        try:
            values[name] = _settable(BY_NAME[name], _field_value(name, params[name]))
        except FieldError as e:
            errors[e.field] = e.message
            values.pop(name, None)

    for name, value in FINETUNE_DEFAULTS.get(values.get("finetune"), {}).items():
        if name not in params:
            values[name] = value

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
        changes = {f.attribute: values[f.name] for f in _FIELDS_OF[target] if f.name in values}
        if target == "setup" and "zero" in values:  # set by the fsdp alias, which targets the inputs
            changes["zero"] = values["zero"]
        try:
            return make(**changes)
        except FieldError as e:
            if unread_config:  # said against calc's default model, not the reader's
                return None
            name = name_of(BY_NAME.get(e.field) or BY_NAME["preset"])
            errors.setdefault(name if name in BY_NAME else _setup_b_field(e.field, params), e.message)
            return None

    preset = values.get("preset", DEFAULT_TEXT["preset"])
    shape = build(partial(_made, PRESETS[preset].replace), "shape") if "preset" not in errors else None
    setup = build(_setup_from, "setup")
    question = build(partial(_made, Question().replace), "question")
    compare = None
    if shape is not None and setup is not None and not unread_config:
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


_VALUE_FIELDS = frozenset(field.name for field in FIELDS if field.kind != "json")
"""The fields read one by one (a pasted config.json stands for the fields it sets)."""
_FIELD_ORDER = {field.name: n for n, field in enumerate(FIELDS)}


@lru_cache(maxsize=None)
def _parsed_defaults() -> dict[str, object]:
    """The value of each field that has a default text, where the reader gives none."""
    return {field.name: _settable(field, _field_value(field.name, DEFAULT_TEXT[field.name]))
            for field in FIELDS if field.name in _VALUE_FIELDS and field.name in DEFAULT_TEXT}


def _settable(field, value):
    """A field's value as its target holds it: a setup's size as its bytes alone."""
    return value[0] if field.kind == "size" and field.target == "setup" else value


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


_FIELDS_OF = {target: tuple(f for f in FIELDS if f.target == target) for target in {f.target for f in FIELDS}}
"""The fields that set each target ("shape", "setup", …), in the registry's order."""


def _made(make, **fields):
    """make(**fields), remembered: a page sends every field again at each edit, and building
    and checking a ModelShape or a setup anew is most of parsing them."""
    try:
        return _made_remembered(make, tuple(sorted(fields.items())))
    except TypeError:  # a value that cannot be a key (not from a page)
        return make(**fields)


@lru_cache(maxsize=256)
def _made_remembered(make, fields: tuple):
    return make(**dict(fields))


def _setup_from(**fields) -> TrainingSetup:
    """The step's TrainingSetup from its fields: made once for each set of fields but the
    batch, which TrainingSetup.replace then checks alone. A reader's edits mostly change
    the batch, and no other field's check reads it."""
    setup = _made(DEFAULT_SETUP.replace, **{name: value for name, value in fields.items() if name != "batch"})
    return setup.replace(batch=fields["batch"]) if "batch" in fields else setup


def check_setup(shape: ModelShape, setup: TrainingSetup) -> None:
    """FieldError, naming the field, for a step calc cannot answer: an implementation
    without measured rows for it, an attention kernel not derived, a layout that cannot
    split the model. Run on the reader's setups before any view, so no view meets one.
    None of these checks reads the batch: each setup is checked once for every batch."""
    _check_setup(shape, setup.replace(batch=1))


@lru_cache(maxsize=256)
def _check_setup(shape: ModelShape, setup: TrainingSetup) -> None:
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


@lru_cache(maxsize=None)  # a function of the registry alone, asked for at every recompute
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


_DEFAULT_BATCH = DEFAULT_SETUP.batch
"""The batch at which the texts and link of every batch are worked out (and remembered)."""


def field_values(inputs: Inputs) -> dict[str, str]:
    """Every field's value as the string its input shows. Only the two batches' texts
    change with the batches: the rest are worked out once for every batch."""
    texts = dict(_field_values(inputs.at_batch(_DEFAULT_BATCH, _DEFAULT_BATCH)))
    texts["batch"] = BY_NAME["batch"].text(inputs.setup.batch)
    texts["b_batch"] = BY_NAME["b_batch"].text(inputs.compare.batch)
    return texts


@lru_cache(maxsize=64)  # a recompute reads the same inputs' texts for the reply and for each view's links
def _field_values(inputs: Inputs) -> dict[str, str]:
    return {name: BY_NAME[name].text(read(inputs)) for name, read in _READERS.items()}


_INPUTS_VALUES = {
    "preset": lambda inputs: inputs.preset, "fsdp": lambda inputs: "", "unit": lambda inputs: inputs.unit,
    "budget": lambda inputs: budget_text(inputs.budget), "reserve": lambda inputs: budget_text(inputs.reserve),
    "claim": lambda inputs: inputs.claim.text, "claim_scope": lambda inputs: inputs.claim.scope,
    "hf_config": lambda inputs: inputs.hf_config, "gpu": lambda inputs: inputs.gpu,
    "fragmentation": lambda inputs: inputs.fragmentation,
}
"""How each field that sets neither the shape, a setup nor the question reads its value off Inputs."""

_READERS = {field.name: _INPUTS_VALUES[field.name] if field.target == "inputs"
            else attrgetter(f"{field.target}.{field.attribute}") for field in FIELDS}
"""Each field's value, read off Inputs (every field is read at every recompute)."""


def inputs_to_params(inputs: Inputs) -> dict[str, str]:
    """The string parameters that give back `inputs`, leaving out what equals the preset or
    the defaults (so a shared link stays short). Setup B's defaults follow setup A.

    Worked out (and remembered) at calc's default batch in both setups, where neither
    batch is in the link; then setup A's batch is written unless it is the default, and
    setup B's unless it follows A's."""
    params = _inputs_to_params(inputs.at_batch(_DEFAULT_BATCH, _DEFAULT_BATCH))
    batches = {name: BY_NAME[name].text(value) for name, value, default in (
        ("batch", inputs.setup.batch, _DEFAULT_BATCH), ("b_batch", inputs.compare.batch, inputs.setup.batch))
        if value != default}
    if not batches:
        return dict(params)
    return dict(sorted({**params, **batches}.items(), key=lambda item: _FIELD_ORDER[item[0]]))


@lru_cache(maxsize=64)  # the reply's link and each link a view writes carry the same inputs
def _inputs_to_params(inputs: Inputs) -> dict[str, str]:
    texts = _field_values(inputs)
    defaults = {"shape": _default_texts("shape", PRESETS[inputs.preset]),
                "setup": _default_texts("setup", _made(DEFAULT_SETUP.replace,
                                                       **FINETUNE_DEFAULTS.get(inputs.setup.finetune, {}))),
                "compare": _default_texts.__wrapped__("compare", compare_base(inputs.shape, inputs.setup)),
                "question": _default_texts("question", Question())}
    out = {}
    for field in FIELDS:
        if not field.in_link or (field.name == "budget" and inputs.gpu != "custom"):  # a card's budget follows from it
            continue
        if field.name == "arch":
            default = card_arch(inputs.gpu)
        elif field.target in defaults:
            default = defaults[field.target][field.name]
        else:
            default = _default_text(field.name)
        if texts[field.name] != default:
            out[field.name] = texts[field.name]
    return out


@lru_cache(maxsize=64)  # setup B's defaults change with the batch: not remembered (see inputs_to_params)
def _default_texts(target: str, defaults) -> dict[str, str]:
    """The text of each field of `target` ("shape", "setup", …) where the reader left it at
    `defaults` (the preset, the default setup, …)."""
    return {field.name: field.text(getattr(defaults, field.attribute)) for field in _FIELDS_OF[target]}
