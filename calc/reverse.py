"""The reverse calculator: which accounting, options, context, batch and reading of a
claimed figure come nearest to it? Searches every setup calc knows for the page's model,
exactly, and counts how many land within NEAR of the figure: with enough knobs something
always does, which is itself evidence against any one derivation of it."""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

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
class Tried:
    """One setup tried and its figure in bytes (`predicted`), whatever the claim: the rows
    counted (a key of ROW_FILTERS), at a context and batch."""
    accounting: str
    implementation: str
    attention: str
    checkpoint: str
    dtype: str
    rows: str
    predicted: int
    context: int
    batch: int


@dataclass(frozen=True, kw_only=True)
class Match(Tried):
    """A setup tried against one reading of the claimed figure (`claimed` bytes)."""
    reading: str
    claimed: int
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


def _candidates(shape, setup, accounting: str):
    """(implementation, attention, checkpoint, dtype) of every setup the accounting has
    measured rows for, for the model."""
    if accounting != "autograd":
        return [(shape.implementation, "explicit", "none", d) for d in ("fp32", "bf16")]
    out = []
    for implementation in IMPLEMENTATION_NAMES:
        for option in [(a, c, d) for a in ("explicit", "flash") for c in ("none", "block") for d in ("fp32", "bf16")]:
            tried = setup.replace(accounting="autograd", attention=option[0], checkpoint=option[1], dtype=option[2])
            try:
                check_implementation(shape.replace(implementation=implementation), tried)
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
    return _search(inputs, claimed, unit, scope, _contexts(inputs), _batches(inputs, scope))


def _batches(inputs: Inputs, scope: str) -> tuple[int, ...]:
    return tuple(sorted({inputs.setup.batch, *BATCHES})) if scope == "batch" else (1,)


def _search(inputs: Inputs, claimed: int, unit: str, scope: str, contexts, batches) -> list[Match]:
    """Every setup tried with each reading of the figure, nearest first (a tie in the order
    the setups are tried)."""
    return [_match(*pair, scope) for pair in _ranked(inputs, claimed, unit, contexts, batches)]


def _ranked(inputs: Inputs, claimed: int, unit: str, contexts, batches, first: int | None = None) -> list[tuple]:
    """(setup tried, reading, bytes read) of every setup tried with each reading of the
    figure, nearest first (the `first` nearest, where given): exact, in whole numbers."""
    readings = _readings(claimed, unit)
    tried = _tried(inputs, tuple(contexts), tuple(batches))
    scale = 1
    for _, target in readings:
        scale *= target
    own = inputs.shape.context
    count = len(readings)
    if first is None:
        pairs = [(n, r) for n in range(len(tried)) for r in range(count)]
    else:  # only setups as near a reading as its `first` nearest can be among the `first` nearest of all
        figures, order = _by_figure(inputs, tuple(contexts), tuple(batches))
        pairs = [(n, r) for r, (_, target) in enumerate(readings) for n in _nearest(figures, order, target, first)]
    keys = [(abs(tried[n].predicted - readings[r][1]) * (scale // readings[r][1]), tried[n].rows != "all", r > 0,
             tried[n].context != own, n * count + r) for n, r in pairs]
    chosen = sorted(keys) if first is None else heapq.nsmallest(first, keys)
    return [(tried[n // count], *readings[n % count]) for *_, n in chosen]


def _nearest(figures: list[int], order: list[int], target: int, first: int) -> list[int]:
    """The setups (indices into the list tried) whose figure is among the `first` nearest
    `target`, with every other setup exactly as near as the farthest of them."""
    below = above = bisect_left(figures, target)
    for _ in range(min(first, len(figures))):  # the `first` nearest figures: figures[below:above]
        if above == len(figures) or (below > 0 and target - figures[below - 1] <= figures[above] - target):
            below -= 1
        else:
            above += 1
    if below == above:
        return []
    reach = max(target - figures[below], figures[above - 1] - target)
    return order[bisect_left(figures, target - reach):bisect_right(figures, target + reach)]


def _readings(claimed: int, unit: str) -> list[tuple[str, int]]:
    """(reading, bytes) of the figure: as typed, and where its unit is often confused with
    another, read in that one."""
    readings = [("as typed", claimed)]
    if unit in SWAPPED:
        other, size, typed = SWAPPED[unit]
        swapped = claimed * size // typed
        if swapped:  # under one byte in the other unit is no reading
            readings.append((f"read as {other}", swapped))
    return readings


def _near_count(inputs: Inputs, claimed: int, unit: str, contexts, batches) -> tuple[int, int]:
    """(setups within NEAR of the figure, setups tried), each reading counted."""
    readings = _readings(claimed, unit)
    figures, _ = _by_figure(inputs, tuple(contexts), tuple(batches))
    near = 0
    for _, target in readings:  # |figure − target| ≤ NEAR·target: a range of whole bytes
        least = -(-target * (NEAR.denominator - NEAR.numerator) // NEAR.denominator)
        most = target * (NEAR.denominator + NEAR.numerator) // NEAR.denominator
        near += bisect_right(figures, most) - bisect_left(figures, least)
    return near, len(figures) * len(readings)


def _match(entry: Tried, reading: str, target: int, scope: str) -> Match:
    return Match(**vars(entry), reading=reading, claimed=target, per_batch=scope == "batch")


def _tried(inputs: Inputs, contexts: tuple, batches: tuple) -> list[Tried]:
    """The figure of every setup tried, whatever the claim (remembered: a reader typing a
    figure asks again for the same setups), each figure of a setup once, with the first
    filter of ROW_FILTERS that gives it."""
    return _tried_remembered(inputs.shape, _setup_searched(inputs), contexts, batches)


def _setup_searched(inputs: Inputs):
    """The reader's setup less what every setup tried sets itself: the reader's own values of
    those ask for the same setups."""
    return inputs.setup.replace(batch=1, accounting="autograd", attention="explicit", checkpoint="none", dtype="fp32")


def _by_figure(inputs: Inputs, contexts: tuple, batches: tuple) -> tuple[list[int], list[int]]:
    """The figures of the setups tried, ascending, and each one's index in the list tried."""
    return _by_figure_remembered(inputs.shape, _setup_searched(inputs), contexts, batches)


@lru_cache(maxsize=64)
def _by_figure_remembered(shape, setup, contexts: tuple, batches: tuple) -> tuple[list[int], list[int]]:
    ranked = sorted((entry.predicted, n) for n, entry in enumerate(_tried_remembered(shape, setup, contexts, batches)))
    return [figure for figure, _ in ranked], [n for _, n in ranked]


@lru_cache(maxsize=64)
def _tried_remembered(shape, setup, contexts: tuple, batches: tuple) -> list[Tried]:
    out = []
    candidates = {accounting: _candidates(shape, setup, accounting) for accounting in ("seed", "cs336", "autograd")}
    for context in contexts:
        try:
            here = shape.replace(context=context)
        except FieldError:
            continue
        for accounting, tried_here in candidates.items():
            for implementation, attention, checkpoint, dtype in tried_here:
                tried = setup.replace(accounting=accounting, attention=attention, checkpoint=checkpoint, dtype=dtype)
                try:
                    rows = activation_table(here.replace(implementation=implementation), tried).rows
                except FieldError:
                    continue
                parts = [_batch_parts(rows, keep) for _, _, keep in ROW_FILTERS]
                for batch in batches:
                    seen = set()
                    for (filter_key, _, _), (each, once, at_one) in zip(ROW_FILTERS, parts):
                        value = each * batch + once + (at_one if batch == 1 else 0)
                        if value not in seen:
                            seen.add(value)
                            out.append(Tried(accounting, implementation, attention, checkpoint, dtype, filter_key,
                                             value, context, batch))
    return out


def _batch_parts(rows, keep) -> tuple[int, int, int]:
    """The bytes of the rows `keep` counts, for a batch of B, as each·B + once (+ at_one
    when B = 1): read off Row.bytes_for_batch at one, two and three sequences (its rule
    is linear in B from two on), so that every batch tried costs no pass over the rows."""
    kept = [r for r in rows if keep(r.category, r.stage)]
    one, two, three = (sum(r.bytes_for_batch(batch) for r in kept) for batch in (1, 2, 3))
    each = three - two
    once = two - 2 * each
    return each, once, one - each - once


def reverse_answer(inputs: Inputs) -> tuple[Sentence, Grid]:
    """The verdict on the inputs' claim and the nearest setups, each row with the inputs
    that reproduce it."""
    claim = inputs.claim
    scope_text = "per sequence" if claim.scope == "sequence" else f"for a batch of {inputs.setup.batch:,}"
    contexts, batches = _contexts(inputs), _batches(inputs, claim.scope)
    if not _tried(inputs, (inputs.shape.context,), (1,)):  # every setup it tries is refused (QLoRA's base, say)
        raise FieldError("finetune" if inputs.setup.finetune != "full" else "preset",
                         "the figures tried (fp32 and bf16, each accounting) do not go with these inputs")
    matches = [_match(*pair, claim.scope) for pair in _ranked(inputs, claim.nbytes, claim.unit, contexts, batches, 8)]
    own_batch = inputs.setup.batch if claim.scope == "batch" else 1
    own = _match(*_ranked(inputs, claim.nbytes, claim.unit, (inputs.shape.context,), (own_batch,), 1)[0],
                 claim.scope)
    near, tried = _near_count(inputs, claim.nbytes, claim.unit, contexts, batches)
    filters = {k: label for k, label, _ in ROW_FILTERS}
    typed = in_unit(claim.nbytes, claim.unit, trim=True)
    best = matches[0]
    verdict = (f"Nearest to {typed} {scope_text} at this model's {inputs.shape.context:,} tokens: {own.description}, "
               f"{filters[own.rows]}, {own.reading} — "
               + ("exactly." if own.error == 0 else f"{percent(own.error)} away.")
               + f" Varying the context ({', '.join(f'{c:,}' for c in _contexts(inputs))} tokens)"
               + (" and the batch" if claim.scope == "batch" else "")
               + f" too, the nearest is {best.description} at {best.where}, "
               + ("exactly" if best.error == 0 else f"{percent(best.error)} away")
               + f"; {near:,} of the {tried:,} setups tried land within {percent(NEAR)} of it."
               + (" With enough knobs something always lands near a figure, which is itself evidence that it has no "
                  "unique derivation." if near > 1 else ""))
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
