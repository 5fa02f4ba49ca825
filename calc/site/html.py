"""The one HTML table writer, and the HTML of every other part of an answer (sentences,
formulas). All text is escaped; no number is re-derived."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlencode

from calc.render import batch_cells, row_cells, sequence_cells, table_headers, total_cells
from calc.site.escape import escape
from calc.table import Formula, Grid, Sentence, Table

_NUM = ' class="num"'
SCROLL_BOX = 'tabindex="0"'
"""A table's box scrolls (sideways on a phone, down when long): keyboards can focus it to
scroll it. (Its table's caption names the table; the same table twice on a page would give
two regions one name, so the box is not a region.)"""


def table_html(key: str, prefix: str, caption: str, headers, rows, numeric, foot: str = "",
               notes=()) -> str:
    """A table: `rows` are (row key, [cell HTML]) with cells already escaped; every row has
    the stable id `{prefix}-{row key}`; the columns whose index is in `numeric` are numbers."""
    body = "".join(_row_open(prefix, rk) + "".join(f'<td{_NUM if n in numeric else ""}>{c}</td>'
                                                    for n, c in enumerate(cells)) + "</tr>"
                   for rk, cells in rows)
    return _table_box(key, caption, _head_html(headers, numeric), body, foot, notes)


def _head_html(headers, numeric) -> str:
    return "".join(f'<th scope="col"{_NUM if n in numeric else ""}>{escape(h)}</th>' for n, h in enumerate(headers))


def _row_open(prefix: str, row_key: str) -> str:
    return f'<tr id="{prefix}-{escape(row_key)}" data-row="{escape(row_key)}">'


def _table_box(key: str, caption: str, head: str, body: str, foot: str, notes) -> str:
    """The table in its scrolling box: its header and body rows as HTML, its footer, notes below."""
    notes_html = "".join(f'<p class="calc-note">{escape(n)}</p>' for n in notes)
    return (f'<div class="calc-table" data-table="{escape(key)}" {SCROLL_BOX}>'
            f'<table class="calc"><caption>{escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>{notes_html}</div>")


def formula_table_html(table: Table, unit: str = "GB", id_prefix: str | None = None) -> str:
    """A Table of formula rows: name (and note), the figure in the reader's unit, formula
    (its LaTeX kept for typesetting), then the exact counts and bytes; the total in the
    footer. The unit comes second so that a phone, which shows about two columns, shows
    what each row costs; the exact figures are a sideways scroll away. Every column after
    the formula is a number."""
    prefix = escape(id_prefix or table.key)
    headers = _unit_second(table_headers(table, unit))
    numeric = {1, *range(3, len(headers))}
    per_sequence = table.batch is not None and table.count_label != "bytes"
    body = []
    for r in table.rows:
        opening, middle = _row_parts(r, per_sequence, prefix)
        *numbers, figure = _numbers(table, r, unit)
        numbers_html = "".join(f"<td{_NUM}>{c}</td>" for c in numbers)
        body.append(f"{opening}<td{_NUM}>{figure}</td>{middle}{numbers_html}</tr>")
    foot = ""
    if table.show_total:
        figures = [f"<strong>{escape(c)}</strong>" for c in total_cells(table, unit)]
        cells = _unit_second(["<strong>Total</strong>", "", *figures])
        foot = (f'<tfoot>{_row_open(prefix, "total")}'
                + "".join(f"<td{_NUM if n in numeric else ''}>{c}</td>" for n, c in enumerate(cells)) + "</tr></tfoot>")
    return _table_box(table.key, table.title, _head_html(headers, numeric), "".join(body), foot, table.notes)


def _unit_second(cells: list) -> list:
    """`cells` (name, formula, numbers…, figure in the unit) with the figure moved second."""
    return [cells[0], cells[-1], *cells[1:-1]]


def _numbers(table: Table, r, unit: str) -> list[str]:
    """A row's cells that change with the batch or the unit (its other cells: _row_parts)."""
    if table.batch is not None and table.count_label != "bytes":
        return [escape(c) for c in batch_cells(table, r, unit)]
    return [escape(c) for c in row_cells(table, r, unit)]


@lru_cache(maxsize=2048)
def _row_parts(r, per_sequence: bool, prefix: str) -> tuple[str, str]:
    """A formula row's HTML that is the same at every batch and in every unit, made once:
    its opening to its name cell (the name, and its note), and its formula cell with, in an
    activation table (`per_sequence`), its cells for one sequence. The figure in the
    reader's unit goes between the two; the row's other numbers after them."""
    name = escape(r.name) + (f"<br><small>{escape(r.note)}</small>" if r.note else "")
    sequence = "".join(f"<td{_NUM}>{escape(c)}</td>" for c in sequence_cells(r)) if per_sequence else ""
    return f"{_row_open(prefix, r.key)}<td>{name}</td>", f"<td>{_formula_cell(r.formula)}</td>{sequence}"


@lru_cache(maxsize=2048)
def _formula_cell(formula: Formula) -> str:
    """The formula as text, each term unbroken (a narrow column breaks it between terms,
    never inside d_ff)."""
    terms = " + ".join(f'<span class="calc-term">{escape(term)}</span>' for term in formula.text().split(" + "))
    return f'<code data-latex="{escape(formula.latex())}">{terms}</code>'


def grid_html(g: Grid, prefix: str, link=None) -> str:
    """A Grid; with `link` (a function of a row's params to a URL), the first cell of a row
    that carries params links to the setup it describes, named by that cell."""
    rows = []
    for r in g.rows:
        cells = [escape(c) for c in r.cells]
        if link is not None and r.params:
            cells[0] = f'<a href="{escape(link(dict(r.params)))}">{cells[0]}</a>'
        rows.append((r.key, cells))
    return table_html(g.key, escape(prefix), g.caption, g.headers, rows, g.numeric,
                      notes=g.notes)


def sentence_html(s: Sentence, prefix: str, link=None) -> str:
    """A stated answer as a paragraph; with `link` and params, a link to the setup it names."""
    if s.code:
        return f'<pre class="calc-command" id="{escape(prefix)}-{escape(s.key)}"><code>{escape(s.text)}</code></pre>'
    after = f' <a href="{escape(link(dict(s.params)))}">Show this layout</a>' if link is not None and s.params else ""
    return f'<p class="calc-answer" id="{escape(prefix)}-{escape(s.key)}">{escape(s.text)}{after}</p>'


def unavailable_html(key: str, messages: list[str]) -> str:
    """What a view shows when the reader's inputs are valid but do not go with the
    parameters the page pins for it (a from-scratch table when flash attention is chosen).
    A reason two fields give is said once."""
    said = "; ".join(dict.fromkeys(messages))
    return (f'<p class="calc-answer calc-unavailable" id="{escape(key)}-unavailable">'
            f'{escape("Not shown for these inputs: " + said + ".")}</p>')


def formula_html(formula: Formula) -> str:
    """A display formula, typeset by KaTeX; its plain text kept for readers without it."""
    return (f'<div class="arithmatex calc-formula" data-text="{escape(formula.text())}">'
            f"\\[{escape(formula.latex())}\\]</div>")


def query_link(page: str, params: dict) -> str:
    """`page` with `params` as its query string (what urlencode writes for them, sorted by name)."""
    return page + ("?" + "&".join(_query_pair(name, str(value)) for name, value in sorted(params.items())) if params else "")


@lru_cache(maxsize=4096)
def _query_pair(name: str, value: str) -> str:
    """`name=value` as urlencode writes it. The reverse calculator's rows write the same few
    pairs into each of their links at every edit."""
    return urlencode([(name, value)])
