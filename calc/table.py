"""Formula, Row and Table: what every accounting returns and every renderer draws.

A Row's count is computed from its Formula, so the formula shown is the formula computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import prod

from calc.cuda import LOGSUMEXP_ROWS_ALIGNMENT, padded_head
from calc.shape import ModelShape

# Each symbol: (plain-text name, LaTeX, meaning). Text uses the field's own name.
SYMBOLS = {
    "B": ("B", "B", "batch size (sequences per step)"),
    "L": ("L", "L", "layers"),
    "s": ("s", "s", "context length (tokens per sequence)"),
    "d": ("d", "d", "d_model, the residual width"),
    "h": ("h", "h", "attention heads"),
    "h_kv": ("h_kv", "h_{kv}", "key/value heads"),
    "d_h": ("d_h", "d_h", "features per head, d / h"),
    "d_h8": ("d_h8", r"d_{h,8}", "features per head padded to a multiple of 8 (what the flash kernel gets)"),
    "d_ff": ("d_ff", "d_{ff}", "feed-forward width"),
    "V": ("V", "V", "vocabulary size"),
    "n_pos": ("n_pos", r"n_{\mathrm{pos}}", "rows of the learned position table (max_positions)"),
    "s_32": ("s₃₂", "s_{32}", "the context rounded up to a multiple of 32 (the memory-efficient kernel's rows)"),
    "L_1": ("(L−1)", "(L-1)", "the layers after the first"),
    "L_t": ("L_t", "L_t", "the layers that train: L less the frozen first ones"),
    "L_t1": ("(L_t−1)", "(L_t-1)", "the layers that train after the first of them"),
    "P_t": ("P_t", "P_t", "the parameters that train (the frozen ones apart)"),
    "P_wt": ("P_wt", "P_{wt}", "parameters in the weight matrices that train"),
    "r": ("r", "r", "the LoRA adapters' rank"),
    "P": ("P", "P", "trainable parameters"),
    "P_w": ("P_w", "P_w", "parameters in weight matrices (what linear layers multiply by)"),
    "P_a": ("P_a", "P_a", "the LoRA adapters' parameters (the trainable ones)"),
    "t": ("t", "t", "tensor-parallel size"),
    "Psi": ("Ψ", r"\Psi", "parameters on one GPU after tensor and pipeline splits"),
    "N": ("N", "N", "data-parallel replicas"),
    "ceil": ("⌈bytes/N⌉", r"\lceil \cdot / N \rceil", "a shard rounded up"),
    "A_gpu": ("A", "A", "activations in flight on the GPU"),
}


def symbol_values(shape: ModelShape) -> dict[str, int]:
    """The value of each shape symbol for `shape` (B is the table's own)."""
    return {
        "L": shape.layers, "s": shape.context, "d": shape.d_model, "h": shape.heads,
        "h_kv": shape.kv_heads, "d_h": shape.d_head, "d_h8": padded_head(shape.d_head), "d_ff": shape.d_ff, "V": shape.vocab, "n_pos": shape.max_positions,
        "s_32": -(-shape.context // LOGSUMEXP_ROWS_ALIGNMENT) * LOGSUMEXP_ROWS_ALIGNMENT,
    }


@dataclass(frozen=True)
class Formula:
    """A sum of products: terms=((3, "s", "d"), ("h", "s", "s")) is 3·s·d + h·s². A factor
    "/t" divides its term by t (the division must be exact)."""

    terms: tuple

    def value(self, values: dict[str, int]) -> int:
        total = 0
        for term in self.terms:
            top = prod(f if isinstance(f, int) else values[f] for f in term if not _divides(f))
            bottom = prod(values[f[1:]] for f in term if _divides(f))
            if top % bottom:
                raise ValueError(f"{Formula((term,)).text()} is not a whole number for these sizes")
            total += top // bottom
        return total

    def text(self) -> str:
        return _formula_text(self.terms, latex=False)

    def latex(self) -> str:
        return _formula_text(self.terms, latex=True)


@lru_cache(maxsize=4096)
def _formula_text(terms: tuple, latex: bool) -> str:
    """A formula's text depends on its terms alone, and a page shows the same few hundred
    formulas at every recompute: each is written once."""
    return " + ".join(_term_text(term, latex) for term in terms)


def _divides(factor) -> bool:
    return isinstance(factor, str) and factor.startswith("/")


def _term_text(term: tuple, latex: bool) -> str:
    """One product, with repeated symbols as powers (s·s -> s²), constants first, and any
    divisors after a slash (or as a LaTeX fraction)."""
    divisors = [f[1:] for f in term if _divides(f)]
    if divisors:
        top = _term_text(tuple(f for f in term if not _divides(f)), latex)
        bottom = _term_text(tuple(divisors), latex)
        return rf"\frac{{{top}}}{{{bottom}}}" if latex else f"{top}/{bottom}"
    constant = prod(f for f in term if isinstance(f, int))
    powers: dict[str, int] = {}
    for f in term:
        if not isinstance(f, int):
            powers[f] = powers.get(f, 0) + 1
    parts = [] if constant == 1 and powers else [f"{constant:,}" if not latex else f"{constant:,}".replace(",", "{,}")]
    for name, power in powers.items():
        plain, tex, _ = SYMBOLS.get(name, (name, _latex_name(name), ""))
        if latex:
            parts.append(tex if power == 1 else f"{tex}^{{{power}}}")
        else:
            parts.append(plain if power == 1 else plain + "⁰¹²³⁴⁵⁶⁷⁸⁹"[power])
    return (r" \cdot " if latex else "·").join(parts)


def combine(formulas, drop: str | None = None) -> Formula:
    """One formula summing `formulas`, like terms merged (3·s·d + s·d = 4·s·d), with one
    factor `drop` taken out of every term (drop="L" turns all-blocks rows into per-block)."""
    merged: dict[tuple, int] = {}
    order: list[tuple] = []
    for formula in formulas:
        for term in formula.terms:
            symbols = [x for x in term if not isinstance(x, int)]
            if drop is not None:
                if drop not in symbols:
                    raise ValueError(f"term {term} has no factor {drop}")
                symbols.remove(drop)
            key = tuple(symbols)
            if key not in merged:
                order.append(key)
                merged[key] = 0
            merged[key] += prod(x for x in term if isinstance(x, int))
    return Formula(tuple((merged[k], *k) if merged[k] != 1 else k for k in order if merged[k]))


def _latex_name(name: str) -> str:
    """LaTeX for a symbol without an entry: A_b -> A_{b}, T_fwd -> T_{\\mathrm{fwd}}."""
    base, _, sub = name.partition("_")
    if not sub:
        return base
    return f"{base}_{{{sub}}}" if len(sub) == 1 else f"{base}_{{\\mathrm{{{sub}}}}}"


def f(*terms) -> Formula:
    """Formula from terms: f((3, "s", "d")) or f(("s", "d"), (2, "s", "h_kv", "d_h"))."""
    return Formula(tuple(tuple(t) if isinstance(t, (tuple, list)) else (t,) for t in terms))


@dataclass(frozen=True)
class Row:
    """One line of a table: `count` values of `bytes_per_value` bytes each.

    In an activation table `count` is per batch element unless `per_step` is set: then the
    row is kept once per training step, whatever the batch (a mask, a scalar). `stage`
    says where in the forward pass it is made: "embedding", "block" (all L blocks) or "head".
    `category` is the part of the model it belongs to (calc.categories), for pictures
    and sums by part. A row `at_batch_one` is kept only when the batch is one sequence
    (and then once): Hugging Face's loss keeps 8 bytes more for one sequence than B·s.
    """

    key: str
    name: str
    formula: Formula
    count: int
    bytes_per_value: int
    per_step: bool = False
    note: str = ""
    stage: str = ""
    category: str = ""
    at_batch_one: bool = False

    @property
    def bytes(self) -> int:
        return self.count * self.bytes_per_value

    def bytes_for_batch(self, batch: int) -> int:
        """Bytes for a batch of `batch` sequences."""
        if self.at_batch_one:
            return self.bytes if batch == 1 else 0
        return self.bytes if self.per_step else self.bytes * batch


def row(values: dict[str, int], key: str, name: str, formula: Formula, bytes_per_value: int, **extra) -> Row:
    """A Row whose count is its formula evaluated at `values`."""
    return Row(key, name, formula, formula.value(values), bytes_per_value, **extra)


@dataclass(frozen=True)
class Table:
    """Rows under a title. `batch` is set for activation tables (rows per batch element)."""

    key: str
    title: str
    rows: tuple
    batch: int | None = None
    count_label: str = "values"
    notes: tuple = field(default=())
    show_total: bool = True
    counts_add_up: bool = True
    """Whether the total row sums the counts: not where rows count different things (the fixed
    memory's weights, gradients and state each count the parameters; some rows count bytes)."""

    @property
    def total_count(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def total_bytes(self) -> int:
        """Bytes of every row; for an activation table, of one batch element (B = 1)."""
        return sum(r.bytes for r in self.rows)

    def bytes_for_batch(self, batch: int | None = None) -> int:
        """Bytes of every row for a batch (the table's own when not given)."""
        b = self.batch if batch is None else batch
        return sum(r.bytes_for_batch(b) for r in self.rows)


@dataclass(frozen=True)
class GridRow:
    """One row of a Grid: its stable key, its cells, and optionally the inputs (field
    name to text) that reproduce the setup it describes, so a page can link to it."""

    key: str
    cells: tuple
    params: tuple = ()


@dataclass(frozen=True)
class Grid:
    """A table of cells already written as text ('16.262 GB', '4,096'): what a comparison
    of several setups returns. Columns from `numeric_from` on (up to `numeric_to`, if set)
    are numbers (right-aligned)."""

    key: str
    caption: str
    headers: tuple
    rows: tuple
    numeric_from: int = 1
    notes: tuple = ()
    numeric_to: int | None = None

    def __post_init__(self):
        for r in self.rows:
            assert len(r.cells) == len(self.headers), f"{self.key}: row {r.key} has {len(r.cells)} cells"

    @property
    def numeric(self) -> range:
        """The indices of the columns that are numbers."""
        return range(self.numeric_from, len(self.headers) if self.numeric_to is None else self.numeric_to)


def grid(key: str, caption: str, headers, rows, numeric_from: int = 1, notes=(), numeric_to: int | None = None) -> Grid:
    """A Grid from (key, cells) or (key, cells, params) tuples."""
    return Grid(key, caption, tuple(headers),
                tuple(GridRow(r[0], tuple(r[1]), tuple(sorted(r[2].items())) if len(r) > 2 else ()) for r in rows),
                numeric_from, tuple(notes), numeric_to)


@dataclass(frozen=True)
class Sentence:
    """One stated answer ('Largest batch …: 6 sequences.'), with a stable key and
    optionally the inputs (field name to text) of the setup it names; `code`: a command to
    type, shown as one."""

    key: str
    text: str
    params: tuple = ()
    code: bool = False
