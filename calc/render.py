"""Tables to HTML, Markdown and plain text. All text is escaped; no number is re-derived."""

from __future__ import annotations

from functools import lru_cache

from calc.escape import escape
from calc.table import Table
from calc.units import grouped, in_unit


def _headers(table: Table, unit: str) -> list[str]:
    if table.count_label == "bytes":
        return ["Component", "Formula", "Bytes", unit]
    if table.batch is None:
        return ["Component", "Formula", table.count_label.capitalize(), "Bytes each", "Bytes", unit]
    return ["Tensor", "Formula", "Values per sequence", "Bytes each", "Bytes per sequence",
            f"Bytes for the batch (B = {table.batch:,})", unit]


def _cells(table: Table, r, unit: str) -> list[str]:
    if table.count_label == "bytes":
        return [r.name, r.formula.text(), grouped(r.bytes), in_unit(r.bytes, unit)]
    if table.batch is None:
        return [r.name, r.formula.text(), grouped(r.count), str(r.bytes_per_value), grouped(r.bytes), in_unit(r.bytes, unit)]
    batch_bytes = r.bytes_for_batch(table.batch)
    per_step = " (once per step)" if r.per_step else ""
    return [r.name, r.formula.text(), grouped(r.count) + per_step, str(r.bytes_per_value), grouped(r.bytes),
            grouped(batch_bytes), in_unit(batch_bytes, unit)]


def _total(table: Table, unit: str) -> list[str]:
    if table.count_label == "bytes":
        return ["Total", "", grouped(table.total_bytes), in_unit(table.total_bytes, unit)]
    if table.batch is None:
        return ["Total", "", grouped(table.total_count), "", grouped(table.total_bytes), in_unit(table.total_bytes, unit)]
    batch_bytes = table.bytes_for_batch()
    return ["Total", "", grouped(table.total_count), "", grouped(table.total_bytes), grouped(batch_bytes),
            in_unit(batch_bytes, unit)]


_NUM = ' class="num"'


def to_html(table: Table, unit: str = "GB", id_prefix: str | None = None) -> str:
    """An HTML table; each row has the stable id `{id_prefix}-{row.key}`."""
    prefix = escape(id_prefix or table.key)
    head = "".join(f"<th{_NUM if i >= 2 else ''}>{escape(h)}</th>" for i, h in enumerate(_headers(table, unit)))
    body = []
    for r in table.rows:
        if table.batch is None or table.count_label == "bytes":
            cells = _cells(table, r, unit)
            body.append(_row_start(prefix, r) + "".join(f'<td class="num">{escape(c)}</td>' for c in cells[2:]) + "</tr>")
        else:  # a row's cells for one sequence do not change with the batch: written once
            batch_bytes = r.bytes_for_batch(table.batch)
            body.append(_sequence_cells(prefix, r) + f'<td class="num">{grouped(batch_bytes)}</td>'
                        f'<td class="num">{escape(in_unit(batch_bytes, unit))}</td></tr>')
    total = _total(table, unit)
    foot = f"<td><strong>{total[0]}</strong></td><td></td>" + "".join(f'<td class="num"><strong>{escape(c)}</strong></td>' for c in total[2:])
    tfoot = f'<tfoot><tr id="{prefix}-total" data-row="total">{foot}</tr></tfoot>' if table.show_total else ""
    notes = "".join(f"<p class=\"calc-note\">{escape(n)}</p>" for n in table.notes)
    return (f'<div class="calc-table" data-table="{escape(table.key)}">'
            f"<table><caption>{escape(table.title)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody>{tfoot}</table>{notes}</div>")


def _row_start(prefix: str, r) -> str:
    """A row's opening tag and its name and formula cells."""
    return (f'<tr id="{prefix}-{escape(r.key)}" data-row="{escape(r.key)}"><td>{escape(r.name)}'
            + (f"<br><small>{escape(r.note)}</small>" if r.note else "") + "</td>"
            f'<td><code data-latex="{escape(r.formula.latex())}">{escape(r.formula.text())}</code></td>')


@lru_cache(maxsize=2048)
def _sequence_cells(prefix: str, r) -> str:
    """An activation row up to its per-sequence bytes: the same at every batch size."""
    per_step = " (once per step)" if r.per_step else ""
    return (_row_start(prefix, r) + f'<td class="num">{escape(grouped(r.count) + per_step)}</td>'
            f'<td class="num">{r.bytes_per_value}</td><td class="num">{grouped(r.bytes)}</td>')


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table, unit: str = "GB") -> str:
    """A Markdown pipe table, numbers right-aligned."""
    headers = _headers(table, unit)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join([":---", ":---"] + ["---:"] * (len(headers) - 2)) + "|"]
    for r in table.rows:
        lines.append("| " + " | ".join(_md_escape(c) for c in _cells(table, r, unit)) + " |")
    if table.show_total:
        lines.append("| " + " | ".join(f"**{c}**" if c else "" for c in _total(table, unit)) + " |")
    return "\n".join(lines) + "\n"


def to_text(table: Table, unit: str = "GB") -> str:
    """A plain-text table for the terminal."""
    total = [_total(table, unit)] if table.show_total else []
    grid = [_headers(table, unit)] + [_cells(table, r, unit) for r in table.rows] + total
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]

    def fmt(line):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(line) for line in grid[1:len(grid) - len(total)]]
    return "\n".join([table.title, fmt(grid[0]), rule] + body + ([rule, fmt(grid[-1])] if total else [])) + "\n"
