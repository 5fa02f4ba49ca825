"""SVG pictures drawn by calc: the same markup at build time and in the browser.

Every picture has a <title> and a <desc>, carries each plotted number as a `data-bytes`
attribute (exact bytes), and comes with its numbers as a table. Pixel positions are the
only inexact arithmetic here; the numbers shown are calc's integers.
"""

from __future__ import annotations

import math
from calc.escape import escape

from calc.activations import activation_table
from calc.activations.autograd import block_rows
from calc.categories import CATEGORIES, category
from calc.fixed import fixed_table
from calc.inputs import Inputs
from calc.peak import largest_batch, peak_bytes
from calc.setup import TrainingSetup
from calc.units import grouped, in_unit

WIDTH = 720
FIXED_PARTS = (("parameters", "Parameters"), ("gradients", "Gradients"), ("optimizer", "Optimizer state"),
               ("weight-copies", "bf16 weight copies"))


def _svg(key: str, height: int, title: str, desc: str, body: str) -> str:
    k = escape(key)
    return (f'<svg class="calc-chart" id="{k}-svg" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-labelledby="{k}-title {k}-desc" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{k}-title">{escape(title)}</title><desc id="{k}-desc">{escape(desc)}</desc>{body}</svg>')


def _text(x: float, y: float, text: str, cls: str = "calc-chart-label", anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'


def _numbers(key: str, headers: list[str], rows: list[tuple[str, list[str]]]) -> str:
    from calc.views import grid_html

    return (f'<details class="calc-chart-numbers"><summary>The numbers in this picture</summary>'
            f"{grid_html(key + '-numbers', 'The numbers in this picture', headers, rows)}</details>")


def memory_parts(i: Inputs, setup: TrainingSetup) -> list[tuple[str, str, int]]:
    """(key, label, bytes) of fixed memory and of activations by category, for the batch."""
    parts = [(r.key, label, r.bytes) for key, label in FIXED_PARTS for r in fixed_table(i.shape, setup).rows if r.key == key]
    by_category = {key: 0 for key, _ in CATEGORIES}
    for r in activation_table(i.shape, setup).rows:
        by_category[category(setup.accounting, r.key)] += r.bytes_for_batch(setup.batch)
    parts += [(key, label, by_category[key]) for key, label in CATEGORIES]
    return parts


def stacked_bars(i: Inputs, key: str, setups: list[tuple[str, str, TrainingSetup]]) -> str:
    """One horizontal stacked bar per setup, the GPU budget as a line, the peak as a tick."""
    bars = [(rk, label, memory_parts(i, setup), peak_bytes(i.shape, setup)) for rk, label, setup in setups]
    return bar_chart(i, key, "Where the memory goes", "Stacked bars of memory by part; the tick is the peak of the step.",
                     bars, "Peak")


def bar_chart(i: Inputs, key: str, title: str, what: str, bars: list, marker_label: str | None) -> str:
    """Horizontal stacked bars: bars = [(key, label, [(part, part label, bytes)], marker bytes or None)]."""
    top = max([i.budget] + [max(sum(b for _, _, b in parts), marker or 0) for _, _, parts, marker in bars]) * 1.05
    left, right, bar_h, gap = 270, 20, 26, 18
    height = 40 + len(bars) * (bar_h + gap) + 60
    scale = (WIDTH - left - right) / top
    body, table = [], []
    for n, (rk, label, parts, marker) in enumerate(bars):
        y = 30 + n * (bar_h + gap)
        body.append(_text(left - 8, y + bar_h * 0.68, label, anchor="end"))
        x = left
        for part, part_label, nbytes in parts:
            if nbytes:
                w = nbytes * scale
                body.append(f'<rect class="calc-part-{part}" x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_h}" '
                            f'data-bar="{escape(rk)}" data-part="{part}" data-bytes="{nbytes}">'
                            f"<title>{escape(f'{label}: {part_label}, {in_unit(nbytes, i.unit)}')}</title></rect>")
                x += w
        if marker is not None:
            px = left + marker * scale
            body.append(f'<line class="calc-chart-peak" x1="{px:.2f}" x2="{px:.2f}" y1="{y - 4}" y2="{y + bar_h + 4}" '
                        f'data-bar="{escape(rk)}" data-peak="{marker}"/>')
        table.append((rk, [label] + [in_unit(b, i.unit) for _, _, b in parts]
                      + ([in_unit(marker, i.unit)] if marker is not None else [in_unit(sum(b for _, _, b in parts), i.unit)])))
    bx = left + i.budget * scale
    bottom = 30 + len(bars) * (bar_h + gap)
    body.append(f'<line class="calc-chart-budget" x1="{bx:.2f}" x2="{bx:.2f}" y1="20" y2="{bottom}" data-budget="{i.budget}"/>')
    body.append(_text(bx, 14, f"GPU: {in_unit(i.budget, i.unit, trim=True)}", anchor="middle"))
    lx, ly = 10, bottom + 14
    for part, part_label, _ in bars[0][2]:
        body.append(f'<rect class="calc-part-{part}" x="{lx}" y="{ly}" width="10" height="10"/>')
        body.append(_text(lx + 14, ly + 9, part_label, "calc-chart-legend"))
        lx += 14 + 7 * len(part_label) + 16
        if lx > WIDTH - 150:
            lx, ly = 10, ly + 18
    desc = "; ".join(f"{label}: {in_unit(marker if marker is not None else sum(b for _, _, b in parts), i.unit)}"
                     for _, label, parts, marker in bars)
    svg = _svg(key, height, title, f"{what} {desc}.", "".join(body))
    headers = ["Setup"] + [label for _, label, _ in bars[0][2]] + [marker_label or "Total"]
    return svg + _numbers(key, headers, table)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10(max(high - low, 1) / count))
    for m in (1, 2, 5, 10):
        if (high - low) / (step * m) <= count:
            step *= m
            break
    start = math.ceil(low / step) * step
    return [start + k * step for k in range(int((high - start) / step) + 1)]


def batch_lines(i: Inputs, key: str, setups: list[tuple[str, str, TrainingSetup]]) -> str:
    """Peak memory against batch size, one line per setup, the budget and largest batches marked."""
    fits = {rk: largest_batch(i.shape, setup, i.budget) for rk, _, setup in setups}
    top_batch = max(8, min(4096, int(max(fits.values()) * 1.5) + 1))
    batches = sorted({1, top_batch} | {max(1, round(top_batch * k / 40)) for k in range(41)})
    series = {rk: [(b, peak_bytes(i.shape, setup.replace(batch=b))) for b in batches] for rk, _, setup in setups}
    y_top = max(i.budget, max(v for s in series.values() for _, v in s)) * 1.05
    left, right, top, bottom, height = 70, 20, 20, 50, 300
    sx = (WIDTH - left - right) / (top_batch - 1 or 1)
    sy = (height - top - bottom) / y_top

    def xy(b, v):
        return left + (b - 1) * sx, height - bottom - v * sy

    body = []
    for t in _nice_ticks(0, y_top / i.unit_bytes):
        _, y = xy(1, t * i.unit_bytes)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, f"{t:g} {i.unit}", "calc-chart-axis", "end"))
    for t in _nice_ticks(1, top_batch):
        x, _ = xy(t, 0)
        body.append(_text(x, height - bottom + 16, f"{t:g}", "calc-chart-axis", "middle"))
    body.append(_text((left + WIDTH - right) / 2, height - 8, "Batch B (sequences)", "calc-chart-axis", "middle"))
    _, by = xy(1, i.budget)
    body.append(f'<line class="calc-chart-budget" x1="{left}" x2="{WIDTH - right}" y1="{by:.1f}" y2="{by:.1f}" data-budget="{i.budget}"/>')
    body.append(_text(WIDTH - right, by - 5, f"GPU: {in_unit(i.budget, i.unit, trim=True)}", anchor="end"))
    table = []
    for n, (rk, label, setup) in enumerate(setups):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(b, v) for b, v in series[rk]))
        data = " ".join(f"{b}:{v}" for b, v in series[rk])
        body.append(f'<polyline class="calc-series-{n}" fill="none" points="{points}" data-series="{escape(rk)}" data-points="{data}"/>')
        best = fits[rk]
        if best:
            x, y = xy(best, peak_bytes(i.shape, setup.replace(batch=best)))
            body.append(f'<circle class="calc-series-{n}" cx="{x:.1f}" cy="{y:.1f}" r="4" data-series="{escape(rk)}" data-largest-batch="{best}">'
                        f"<title>{escape(f'{label}: largest batch {best:,}')}</title></circle>")
        body.append(f'<rect class="calc-series-{n}" x="{left + 10}" y="{top + 4 + n * 16}" width="12" height="4"/>')
        body.append(_text(left + 28, top + 10 + n * 16, f"{label} (largest batch {best:,})", "calc-chart-legend"))
        table.append((rk, [label, grouped(best), in_unit(peak_bytes(i.shape, setup.replace(batch=1)), i.unit),
                           in_unit(peak_bytes(i.shape, setup.replace(batch=max(best, 1))), i.unit)]))
    desc = "; ".join(f"{label}: at most {fits[rk]:,} sequences" for rk, label, _ in setups)
    svg = _svg(key, height, "Peak memory against batch size", f"Lines of peak memory per setup; the horizontal line is the GPU. {desc}.",
               "".join(body))
    return svg + _numbers(key, ["Setup", "Largest batch", "Peak at B = 1", "Peak at the largest batch"], table)


CONTEXTS = tuple(2**k for k in range(7, 16))  # 128 … 32,768 tokens


def context_lines(i: Inputs, key: str) -> str:
    """Activations per sequence against context length, log axes: the quadratic term against
    the rest, explicit attention against flash."""
    setup = i.setup.replace(accounting="autograd", batch=1)
    rows = []
    for s in CONTEXTS:
        shape = i.shape.replace(context=s)
        explicit = activation_table(shape, setup.replace(attention="explicit"))
        quadratic = sum(r.bytes_for_batch(1) for r in explicit.rows if category("autograd", r.key) == "quadratic")
        total = explicit.bytes_for_batch(1)
        flash = activation_table(shape, setup.replace(attention="flash")).bytes_for_batch(1)
        rows.append((s, total, flash, quadratic, total - quadratic))
    names = (("explicit", "explicit attention"), ("flash", "flash attention"), ("quadratic", "softmax output and mask (∝ s²)"),
             ("linear", "everything else, explicit (∝ s)"))
    lo = min(min(r[1:]) for r in rows)
    hi = max(max(r[1:]) for r in rows)
    left, right, top, bottom, height = 70, 20, 20, 50, 320
    lx0, lx1 = math.log2(CONTEXTS[0]), math.log2(CONTEXTS[-1])
    ly0, ly1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

    def xy(s, v):
        x = left + (math.log2(s) - lx0) / (lx1 - lx0) * (WIDTH - left - right)
        y = height - bottom - (math.log10(v) - ly0) / (ly1 - ly0) * (height - top - bottom)
        return x, y

    body = []
    for e in range(ly0, ly1 + 1):
        _, y = xy(CONTEXTS[0], 10**e)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, in_unit(10**e, "GB", 3, trim=True) if e >= 6 else f"10^{e} B", "calc-chart-axis", "end"))
    for s in CONTEXTS:
        x, _ = xy(s, 10**ly0)
        body.append(_text(x, height - bottom + 16, f"{s:,}", "calc-chart-axis", "middle"))
    body.append(_text((left + WIDTH - right) / 2, height - 8, "Context s (tokens, log scale)", "calc-chart-axis", "middle"))
    x, _ = xy(i.shape.context, 10**ly0) if i.shape.context in CONTEXTS else (None, None)
    if x is not None:
        body.append(f'<line class="calc-chart-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}"/>')
    for n, (series, label) in enumerate(names):
        values = [(r[0], r[1 + n]) for r in rows]
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in (xy(s, v) for s, v in values))
        body.append(f'<polyline class="calc-series-{n}" fill="none" points="{points}" data-series="{series}" '
                    f'data-points="{" ".join(f"{s}:{v}" for s, v in values)}"/>')
        body.append(f'<rect class="calc-series-{n}" x="{left + 10}" y="{top + 4 + n * 16}" width="12" height="4"/>')
        body.append(_text(left + 28, top + 10 + n * 16, label, "calc-chart-legend"))
    svg = _svg(key, height, "Activations per sequence against context length",
               "Log-log lines: explicit attention grows with the square of the context, flash attention linearly.", "".join(body))
    table = [(f"s-{r[0]}", [grouped(r[0])] + [in_unit(v, i.unit) for v in r[1:]]) for r in rows]
    return svg + _numbers(key, ["Context s"] + [label for _, label in names], table)


def block_bars(i: Inputs, key: str) -> str:
    """One block's kept tensors, per sequence, largest first."""
    setup = i.setup.replace(accounting="autograd", checkpoint="none", batch=1)
    rows = [(r.key, r.name, r.bytes // i.shape.layers if not r.per_step else r.bytes, category("autograd", r.key))
            for r in block_rows(i.shape, setup)]
    rows.sort(key=lambda r: -r[2])
    left, right, bar_h, gap = 300, 90, 16, 6
    height = 20 + len(rows) * (bar_h + gap)
    scale = (WIDTH - left - right) / max(r[2] for r in rows)
    body = []
    for n, (rk, name, nbytes, cat) in enumerate(rows):
        y = 10 + n * (bar_h + gap)
        short = name if len(name) <= 44 else name[:43] + "…"
        body.append(_text(left - 8, y + 12, short, anchor="end"))
        body.append(f'<rect class="calc-part-{cat}" x="{left}" y="{y}" width="{max(nbytes * scale, 0.5):.2f}" height="{bar_h}" '
                    f'data-row="{escape(rk)}" data-bytes="{nbytes}"><title>{escape(f"{name}: {in_unit(nbytes, i.unit)}")}</title></rect>')
        body.append(_text(left + nbytes * scale + 6, y + 12, in_unit(nbytes, i.unit), "calc-chart-axis"))
    svg = _svg(key, height, "What one block keeps", "Bars of the tensors one transformer block keeps for one sequence, largest first.",
               "".join(body))
    table = [(rk, [name, grouped(nbytes), in_unit(nbytes, i.unit)]) for rk, name, nbytes, _ in rows]
    return svg + _numbers(key, ["Tensor", "Bytes", i.unit], table)
