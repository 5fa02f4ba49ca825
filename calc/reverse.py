"""The reverse calculator: which accounting, options and reading of a claimed figure come
nearest to it? Searches every setup calc knows for the page's model, exactly."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from calc.activations import activation_table
from calc.categories import category
from calc.inputs import Inputs

ROW_FILTERS = (
    ("all", "every row", lambda cat, stage: True),
    ("no-output", "without the output layer", lambda cat, stage: cat != "output"),
    ("no-quadratic", "without the attention scores/probabilities", lambda cat, stage: cat != "quadratic"),
    ("blocks-only", "the blocks only", lambda cat, stage: cat not in ("output", "inputs")),
)
PAGES = {"seed": "counting-every-intermediate/", "cs336": "", "autograd": "what-autograd-keeps/"}
SWAPPED = {"GB": ("GiB", 2**30, 10**9), "GiB": ("GB", 10**9, 2**30), "MiB": ("MB", 10**6, 2**20)}


@dataclass(frozen=True)
class Match:
    accounting: str
    attention: str
    checkpoint: str
    dtype: str
    rows: str
    reading: str
    predicted: int
    claimed: int

    @property
    def error(self) -> Fraction:
        """Relative error |predicted − claimed| / claimed, exact."""
        return Fraction(abs(self.predicted - self.claimed), self.claimed)

    def params(self) -> dict[str, str]:
        return {"accounting": self.accounting, "attention": self.attention, "checkpoint": self.checkpoint,
                "dtype": self.dtype}


def _candidates(accounting: str):
    if accounting == "autograd":
        return [(a, c, d) for a in ("explicit", "flash") for c in ("none", "block") for d in ("fp32", "bf16")]
    return [("explicit", "none", d) for d in ("fp32", "bf16")]


def search(inputs: Inputs, claimed: int, unit: str, scope: str, limit: int = 8) -> list[Match]:
    """The `limit` setups nearest to `claimed` bytes, per sequence or for the page's batch,
    reading the figure as typed and with GB and GiB swapped."""
    readings = [("as typed", claimed)]
    if unit in SWAPPED:
        other, size, typed = SWAPPED[unit]
        readings.append((f"read as {other}", claimed * size // typed))
    batch = inputs.setup.batch if scope == "batch" else 1
    found: dict[tuple, Match] = {}
    for accounting in ("seed", "cs336", "autograd"):
        for attention, checkpoint, dtype in _candidates(accounting):
            setup = inputs.setup.replace(accounting=accounting, attention=attention, checkpoint=checkpoint, dtype=dtype)
            rows = activation_table(inputs.shape, setup).rows
            for filter_key, _, keep in ROW_FILTERS:
                value = sum(r.bytes_for_batch(batch) for r in rows if keep(category(accounting, r.key), r.stage))
                for reading, target in readings:
                    m = Match(accounting, attention, checkpoint, dtype, filter_key, reading, value, target)
                    key = (accounting, attention, checkpoint, dtype, value, reading)
                    if key not in found or filter_key == "all":
                        found[key] = m
    ranked = sorted(found.values(), key=lambda m: (m.error, m.rows != "all", m.reading != "as typed"))
    return ranked[:limit]
