"""Tables as text: the cells every renderer shows (the site's HTML writer reads the same
cells), and plain-text and Markdown tables for the terminal. No number is re-derived."""

from __future__ import annotations

from functools import lru_cache

from calc.table import Formula, Grid, Sentence, Table, grid
from calc.units import grouped, in_unit


def table_headers(table: Table, unit: str) -> list[str]:
    if table.count_label == "bytes":
        return ["Component", "Formula", "Bytes", unit]
    if table.batch is None:
        return ["Component", "Formula", table.count_label.capitalize(), "Bytes each", "Bytes", unit]
    return ["Tensor", "Formula", "Values per sequence", "Bytes each", "Bytes per sequence",
            f"Bytes for the batch (B = {table.batch:,})", unit]


def row_cells(table: Table, r, unit: str) -> list[str]:
    """A row's cells after its name and formula, in `table_headers`' order."""
    if table.count_label == "bytes":
        return [grouped(r.bytes), in_unit(r.bytes, unit)]
    if table.batch is None:
        return [grouped(r.count), str(r.bytes_per_value), grouped(r.bytes), in_unit(r.bytes, unit)]
    return [*sequence_cells(r), *batch_cells(table, r, unit)]


def batch_cells(table: Table, r, unit: str) -> list[str]:
    """An activation row's cells for the table's batch: its bytes, and the same in `unit`."""
    batch_bytes = r.bytes_for_batch(table.batch)
    return [grouped(batch_bytes), in_unit(batch_bytes, unit)]


@lru_cache(maxsize=2048)
def sequence_cells(r) -> tuple[str, str, str]:
    """An activation row's cells for one sequence: the same at every batch size, so each is
    written once."""
    per_step = " (only at B = 1)" if r.at_batch_one else " (once per step)" if r.per_step else ""
    return grouped(r.count) + per_step, str(r.bytes_per_value), grouped(r.bytes)


def total_cells(table: Table, unit: str) -> list[str]:
    """The total row's cells after its label and the empty formula cell."""
    if table.count_label == "bytes":
        return [grouped(table.total_bytes), in_unit(table.total_bytes, unit)]
    if table.batch is None:
        count = grouped(table.total_count) if table.counts_add_up else ""
        return [count, "", grouped(table.total_bytes), in_unit(table.total_bytes, unit)]
    batch_bytes = table.bytes_for_batch()
    return [grouped(table.total_count), "", grouped(table.total_bytes), grouped(batch_bytes), in_unit(batch_bytes, unit)]


def as_grid(table: Table, unit: str) -> Grid:
    """A Table's cells as a Grid (name, formula, numbers), its total as the last row."""
    rows = [(r.key, [r.name, r.formula.text(), *row_cells(table, r, unit)]) for r in table.rows]
    if table.show_total:
        rows.append(("total", ["Total", "", *total_cells(table, unit)]))
    return grid(table.key, table.title, table_headers(table, unit), rows, numeric_from=2, notes=table.notes)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: Table | Grid, unit: str = "GB") -> str:
    """A Markdown pipe table, numbers right-aligned."""
    g = as_grid(table, unit) if isinstance(table, Table) else table
    lines = ["| " + " | ".join(_md_escape(h) or " " for h in g.headers) + " |",
             "|" + "|".join("---:" if n in g.numeric else ":---" for n in range(len(g.headers))) + "|"]
    for r in g.rows:
        cells = [f"**{c}**" if c and r.key == "total" and isinstance(table, Table) else c for c in r.cells]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_text(table: Table | Grid, unit: str = "GB") -> str:
    """A plain-text table for the terminal: caption, header, rule, rows (a rule above the total)."""
    g = as_grid(table, unit) if isinstance(table, Table) else table
    lines = [list(g.headers)] + [list(r.cells) for r in g.rows]
    widths = [max(len(line[n]) for line in lines) for n in range(len(g.headers))]

    def fmt(line):
        return "  ".join(c.rjust(w) if n in g.numeric else c.ljust(w)
                         for n, (c, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [fmt(line) for line in lines[1:]]
    if isinstance(table, Table) and table.show_total:
        body.insert(len(body) - 1, rule)
    return "\n".join([g.caption, fmt(lines[0]), rule, *body, *g.notes]) + "\n"


def part_text(part, unit: str = "GB", markdown: bool = False) -> str:
    """Any part of an answer as terminal text: a table, a sentence, a formula, or a
    picture's numbers."""
    if isinstance(part, (Table, Grid)):
        return (to_markdown if markdown else to_text)(part, unit)
    if isinstance(part, Sentence):
        return part.text + "\n"
    if isinstance(part, Formula):
        return part.text() + "\n"
    return (to_markdown if markdown else to_text)(part.numbers(), unit)
