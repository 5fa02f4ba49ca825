"""The reverse calculator: which accounting, options, context, batch and reading of a
claimed figure come nearest to it? Searches every setup calc knows for the page's model,
exactly, and counts how many land within NEAR of the figure: with enough knobs something
always does, which is itself evidence against any one derivation of it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from calc.activations import activation_table, check_implementation
from calc.errors import FieldError
from calc.inputs import Inputs
from calc.shape import IMPLEMENTATION_NAMES
from calc.table import Grid, Sentence, grid
from calc.units import in_unit

ROW_FILTERS = (
    ("all", "every row", lambda cat, stage: True),
    ("no-output", "without the output layer", lambda cat, stage: cat != "output"),
    ("no-quadratic", "without the attention scores/probabilities", lambda cat, stage: cat != "quadratic"),
    ("blocks-only", "the blocks only", lambda cat, stage: cat not in ("output", "inputs")),
)
SWAPPED = {"GB": ("GiB", 2**30, 10**9), "GiB": ("GB", 10**9, 2**30), "MB": ("MiB", 2**20, 10**6),
           "MiB": ("MB", 10**6, 2**20)}
"""A figure typed in one unit, read in the unit it is often confused with: (other unit,
its bytes, the typed unit's bytes)."""
CONTEXTS = (128, 256, 512, 1024, 2048, 4096, 8192)
"""Context lengths tried besides the model's own (up to its learned positions, if any)."""
BATCHES = (1, 2, 4, 8, 16, 32, 64)
"""Batch sizes tried for a figure claimed for the whole batch, besides the inputs' own."""
NEAR = Fraction(5, 100)
"""Within 5 % of the claim counts as landing near it."""


@dataclass(frozen=True)
class Match:
    accounting: str
    implementation: str
    attention: str
    checkpoint: str
    dtype: str
    rows: str
    reading: str
    predicted: int
    claimed: int
    context: int
    batch: int
    per_batch: bool = False  # the claim is for the whole batch, so the batch is part of the setup

    @property
    def error(self) -> Fraction:
        """Relative error |predicted − claimed| / claimed, exact."""
        return Fraction(abs(self.predicted - self.claimed), self.claimed)

    def params(self) -> dict[str, str]:
        """The inputs that select this setup."""
        out = {"accounting": self.accounting, "attention": self.attention, "checkpoint": self.checkpoint,
               "dtype": self.dtype, "context": str(self.context)} | ({"batch": str(self.batch)} if self.per_batch else {})
        return out | ({"implementation": self.implementation} if self.accounting == "autograd" else {})

    @property
    def description(self) -> str:
        if self.accounting != "autograd":
            return f"{self.accounting}, {self.dtype}"
        return (f"autograd ({IMPLEMENTATION_NAMES[self.implementation]}), {self.dtype}, {self.attention} attention, "
                f"checkpoint {self.checkpoint}")

    @property
    def where(self) -> str:
        """The context (and batch) it was found at: '256 tokens', '1,024 tokens, batch 8'."""
        return f"{self.context:,} tokens" + (f", batch {self.batch:,}" if self.per_batch else "")


def _candidates(inputs: Inputs, accounting: str):
    """(implementation, attention, checkpoint, dtype) of every setup the accounting has
    measured rows for, for the inputs' model."""
    if accounting != "autograd":
        return [(inputs.shape.implementation, "explicit", "none", d) for d in ("fp32", "bf16")]
    out = []
    for implementation in IMPLEMENTATION_NAMES:
        for option in [(a, c, d) for a in ("explicit", "flash") for c in ("none", "block") for d in ("fp32", "bf16")]:
            setup = inputs.setup.replace(accounting="autograd", attention=option[0], checkpoint=option[1], dtype=option[2])
            try:
                check_implementation(inputs.shape.replace(implementation=implementation), setup)
            except FieldError:
                continue
            out.append((implementation, *option))
    return out


def search(inputs: Inputs, claimed: int, unit: str, scope: str, limit: int = 8) -> list[Match]:
    """The `limit` setups nearest to `claimed` bytes, per sequence or for the page's batch,
    reading the figure as typed and with GB and GiB swapped, at the model's context."""
    batches = (inputs.setup.batch,) if scope == "batch" else (1,)
    return _search(inputs, claimed, unit, scope, (inputs.shape.context,), batches)[:limit]


def _contexts(inputs: Inputs) -> tuple[int, ...]:
    """The inputs' context and CONTEXTS, up to the learned position table where there is one."""
    shape = inputs.shape
    ceiling = shape.max_positions if shape.positions == "learned" else max(CONTEXTS)
    return tuple(sorted({shape.context, *(c for c in CONTEXTS if c <= ceiling)}))


def search_wide(inputs: Inputs, claimed: int, unit: str, scope: str) -> list[Match]:
    """Every setup, context (and for a batch's figure, batch) tried, nearest first."""
    batches = tuple(sorted({inputs.setup.batch, *BATCHES})) if scope == "batch" else (1,)
    return _search(inputs, claimed, unit, scope, _contexts(inputs), batches)


def _search(inputs: Inputs, claimed: int, unit: str, scope: str, contexts, batches) -> list[Match]:
    readings = [("as typed", claimed)]
    if unit in SWAPPED:
        other, size, typed = SWAPPED[unit]
        swapped = claimed * size // typed
        if swapped:  # under one byte in the other unit is no reading
            readings.append((f"read as {other}", swapped))
    found: dict[tuple, Match] = {}
    for context in contexts:
        try:
            shape = inputs.shape.replace(context=context)
        except FieldError:
            continue
        for accounting in ("seed", "cs336", "autograd"):
            for implementation, attention, checkpoint, dtype in _candidates(inputs, accounting):
                setup = inputs.setup.replace(accounting=accounting, attention=attention, checkpoint=checkpoint,
                                             dtype=dtype, batch=1)
                try:
                    rows = activation_table(shape.replace(implementation=implementation), setup).rows
                except FieldError:
                    continue
                for batch in batches:
                    for filter_key, _, keep in ROW_FILTERS:
                        value = sum(r.bytes_for_batch(batch) for r in rows if keep(r.category, r.stage))
                        for reading, target in readings:
                            m = Match(accounting, implementation, attention, checkpoint, dtype, filter_key, reading,
                                      value, target, context, batch, scope == "batch")
                            key = (accounting, implementation, attention, checkpoint, dtype, value, reading, context, batch)
                            if key not in found or filter_key == "all":
                                found[key] = m
    return sorted(found.values(), key=lambda m: (m.error, m.rows != "all", m.reading != "as typed",
                                                 m.context != inputs.shape.context))


def reverse_answer(inputs: Inputs) -> tuple[Sentence, Grid]:
    """The verdict on the inputs' claim and the nearest setups, each row with the inputs
    that reproduce it."""
    claim = inputs.claim
    scope_text = "per sequence" if claim.scope == "sequence" else f"for a batch of {inputs.setup.batch:,}"
    everything = search_wide(inputs, claim.nbytes, claim.unit, claim.scope)
    near = [m for m in everything if m.error <= NEAR]
    at_own = [m for m in everything if m.context == inputs.shape.context and m.batch == (
        inputs.setup.batch if claim.scope == "batch" else 1)]
    matches = everything[:8]
    filters = {k: label for k, label, _ in ROW_FILTERS}
    typed = in_unit(claim.nbytes, claim.unit, trim=True)
    best, own = matches[0], at_own[0]
    verdict = (f"Nearest to {typed} {scope_text} at this model's {inputs.shape.context:,} tokens: {own.description}, "
               f"{filters[own.rows]}, {own.reading} — "
               + ("exactly." if own.error == 0 else f"{percent(own.error)} away.")
               + f" Varying the context ({', '.join(f'{c:,}' for c in _contexts(inputs))} tokens)"
               + (" and the batch" if claim.scope == "batch" else "")
               + f" too, the nearest is {best.description} at {best.where}, "
               + ("exactly" if best.error == 0 else f"{percent(best.error)} away")
               + f"; {len(near):,} of the {len(everything):,} setups tried land within {percent(NEAR)} of it."
               + (" With enough knobs something always lands near a figure, which is itself evidence that it has no "
                  "unique derivation." if len(near) > 1 else ""))
    # how near, and the figure, come second: a phone shows about two columns
    rows = [(str(n), [m.description, percent(m.error), in_unit(m.predicted, "GB"), in_unit(m.predicted, "GiB"),
                      m.where, filters[m.rows], m.reading], m.params()) for n, m in enumerate(matches, 1)]
    table = grid("reverse", f"Nearest setups to {typed} {scope_text}",
                 ["Accounting and options", "Off by", "Predicted (GB)", "Predicted (GiB)",
                  "Context" + (" and batch" if claim.scope == "batch" else ""), "Rows counted", "Reading of the figure"],
                 rows, numeric_from=1, numeric_to=4)
    return Sentence("verdict", verdict), table


def percent(x: Fraction) -> str:
    """A relative error as a percentage ('0.28%'), or a factor past 10 ('12.3×')."""
    if x == 0:
        return "0 (exact)"
    return f"{float(x):.2%}" if x < 10 else f"{float(x):.1f}×"
