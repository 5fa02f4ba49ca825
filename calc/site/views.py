"""Named views as HTML: the same at build time (a page's `[[calc NAME]]` directive) and in
the browser (calc.site.browser). What each view computes is calc.catalog's; this module
only renders the parts, and links a part that names a setup to the page that shows it.
"""

from __future__ import annotations

from functools import lru_cache

from calc.catalog import READS_CLAIM, SAME_AT_EVERY_BATCH, VIEWS, answer, view_options
from calc.fields import FIELDS
from calc.inputs import Inputs, inputs_to_params, parse_inputs
from calc.report import value_text
from calc.site.charts import chart_html
from calc.site.escape import escape
from calc.site.html import formula_html, formula_table_html, grid_html, query_link, sentence_html, table_html
from calc.table import Formula, Grid, Sentence, Table

ACCOUNTING_PAGES = {"seed": "../counting-every-intermediate/", "cs336": "../", "autograd": "../what-autograd-keeps/"}
"""Where each accounting's table is, from a page one level down (the reverse calculator's links)."""

ID_SUFFIXES = {("moments", "parts"): "-parts"}
"""A second table in one view gets its own id prefix: the view's key and this suffix."""


def _linker(name: str, inputs: Inputs):
    """How a row or sentence that names a setup links to it: every input the reader set,
    then the setup's own. None for views whose parts do not link."""
    if name not in ("reverse", "solver", "scratch-variants"):
        return None
    carried = inputs_to_params(inputs)
    if name == "reverse":
        return lambda params: query_link(ACCOUNTING_PAGES[params["accounting"]], {**carried, **params})
    return lambda params: query_link("", {**carried, **params})


def _part_html(name: str, part, inputs: Inputs, key: str, link) -> str:
    """One part of view `name` as HTML; `link`: _linker(name, inputs)."""
    if isinstance(part, Table):
        if name == "formulas":
            return _formulas_html(part, key)
        return formula_table_html(part, inputs.unit, key + ID_SUFFIXES.get((name, part.key), ""))
    if isinstance(part, Grid):
        return grid_html(part, key, link)
    if isinstance(part, Sentence):
        return sentence_html(part, key, link)
    if isinstance(part, Formula):
        return formula_html(part)
    return chart_html(part, key)


CLAIM_FIELDS = frozenset(field.name for field in FIELDS if field.group == "claim")
"""The claimed figure's fields (the reverse calculator's)."""
_UNREAD = {name: (CLAIM_FIELDS if name not in READS_CLAIM else frozenset())
           | ({"batch"} if name in SAME_AT_EVERY_BATCH else frozenset()) for name in VIEWS}
"""The fields each view's output does not depend on."""


def _formulas_html(table: Table, key: str) -> str:
    """An accounting's formulas in LaTeX (typeset by KaTeX), with bytes per value."""
    rows = [(r.key, [escape(r.name), f'<span class="arithmatex calc-math">\\({escape(r.formula.latex())}\\)</span>',
                     str(r.bytes_per_value)]) for r in table.rows]
    return table_html(f"{table.key}-formulas", f"{escape(key)}-{table.key}", table.title,
                      ["Tensor", "Values per sequence", "Bytes each"], rows, {2})


def render_view(name: str, params: dict, key: str | None = None, **extra) -> str:
    """HTML of view `name` for string `params` (calc's field names, and the view's
    options). Raises InputError or KeyError.

    A view is a pure function of its parameters, so the last few hundred renders are kept:
    a reader stepping an input back and forth gets each table again at once. A view is
    remembered without the fields it does not read: typing a figure redraws only what
    explains it, a batch only what changes with it."""
    if not extra:
        unread = _UNREAD.get(name)
        if unread:
            params = {field: value for field, value in params.items() if field not in unread}
        try:
            return _render_remembered(name, tuple(sorted(params.items())), key)
        except TypeError:  # a value that cannot be a key (not from a page)
            pass
    return _render(name, params, key, **extra)


@lru_cache(maxsize=512)
def _render_remembered(name: str, items: tuple, key: str | None) -> str:
    return _render(name, dict(items), key)


def forget_rendered() -> None:
    """Empty the memory of past renders."""
    _render_remembered.cache_clear()


def _render(name: str, params: dict, key: str | None, **extra) -> str:
    if name not in VIEWS:
        raise KeyError(f"unknown view {name!r}")
    inputs = parse_inputs(params)
    parts = answer(name, inputs, {**view_options(name, params), **extra})
    link = _linker(name, inputs)
    return "".join(_part_html(name, part, inputs, key or name, link) for part in parts)


def render_value(name: str, params: dict) -> str:
    """One number as text (calc.report.value_text) for string `params`."""
    return value_text(parse_inputs(params), name)
