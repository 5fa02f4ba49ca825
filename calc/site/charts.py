"""SVG pictures drawn by calc: the same markup at build time and in the browser.

Every picture has a <title> and a <desc>, carries each plotted number as a `data-bytes`
attribute (exact bytes), and comes with its numbers as a table. Pixel positions are the
only inexact arithmetic here; the numbers shown are calc's integers.
"""

from __future__ import annotations

import math

from calc.comparisons import BatchLines, Bars, BlockTensors, ContextLines
from calc.site.escape import escape
from calc.site.html import grid_html
from calc.units import in_unit

WIDTH = 720


def _svg(key: str, height: int, title: str, desc: str, body: str) -> str:
    k = escape(key)
    return (f'<svg class="calc-chart" id="{k}-svg" viewBox="0 0 {WIDTH} {height}" role="img" '
            f'aria-labelledby="{k}-title {k}-desc" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{k}-title">{escape(title)}</title><desc id="{k}-desc">{escape(desc)}</desc>{body}</svg>')


def _text(x: float, y: float, text: str, cls: str = "calc-chart-label", anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'


def _numbers(key: str, chart) -> str:
    """The picture's numbers (the engine's Grid), folded under it."""
    return (f'<details class="calc-chart-numbers"><summary>The numbers in this picture</summary>'
            f"{grid_html(chart.numbers(), key + '-numbers')}</details>")


def chart_html(chart, key: str) -> str:
    """The SVG picture of a chart's data, and its numbers as a table."""
    draw = {Bars: bar_chart, BatchLines: batch_lines, ContextLines: context_lines, BlockTensors: block_bars}[type(chart)]
    return draw(chart, key) + _numbers(key, chart)


def bar_chart(chart: Bars, key: str) -> str:
    """Horizontal stacked bars, the GPU budget as a line, each bar's marker as a tick."""
    top = max([chart.budget] + [max(b.total, b.marker or 0) for b in chart.bars]) * 1.05
    left, right, bar_h, gap = 270, 20, 26, 18
    height = 40 + len(chart.bars) * (bar_h + gap) + 60
    scale = (WIDTH - left - right) / top
    body = []
    for n, bar in enumerate(chart.bars):
        y = 30 + n * (bar_h + gap)
        body.append(_text(left - 8, y + bar_h * 0.68, bar.label, anchor="end"))
        x = left
        for part, part_label, nbytes in bar.parts:
            if nbytes:
                w = nbytes * scale
                body.append(f'<rect class="calc-part-{part}" x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar_h}" '
                            f'data-bar="{escape(bar.key)}" data-part="{part}" data-bytes="{nbytes}">'
                            f"<title>{escape(f'{bar.label}: {part_label}, {in_unit(nbytes, chart.unit)}')}</title></rect>")
                x += w
        if bar.marker is not None:
            px = left + bar.marker * scale
            body.append(f'<line class="calc-chart-peak" x1="{px:.2f}" x2="{px:.2f}" y1="{y - 4}" y2="{y + bar_h + 4}" '
                        f'data-bar="{escape(bar.key)}" data-peak="{bar.marker}"/>')
    bx = left + chart.budget * scale
    bottom = 30 + len(chart.bars) * (bar_h + gap)
    body.append(f'<line class="calc-chart-budget" x1="{bx:.2f}" x2="{bx:.2f}" y1="20" y2="{bottom}" '
                f'data-budget="{chart.budget}"/>')
    body.append(_text(bx, 14, f"GPU: {in_unit(chart.budget, chart.unit, trim=True)}", anchor="middle"))
    lx, ly = 10, bottom + 14
    for part, part_label, _ in chart.bars[0].parts:
        if not any(dict((p, b) for p, _, b in bar.parts)[part] for bar in chart.bars):
            continue  # a part no bar has is not in the legend
        body.append(f'<rect class="calc-part-{part}" x="{lx}" y="{ly}" width="10" height="10"/>')
        body.append(_text(lx + 14, ly + 9, part_label, "calc-chart-legend"))
        lx += 14 + 7 * len(part_label) + 16
        if lx > WIDTH - 150:
            lx, ly = 10, ly + 18
    desc = "; ".join(f"{b.label}: {in_unit(b.marker if b.marker is not None else b.total, chart.unit)}" for b in chart.bars)
    return _svg(key, height, chart.title, f"{chart.what} {desc}.", "".join(body))


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10(max(high - low, 1) / count))
    for m in (1, 2, 5, 10):
        if (high - low) / (step * m) <= count:
            step *= m
            break
    start = math.ceil(low / step) * step
    return [start + k * step for k in range(int((high - start) / step) + 1)]


def batch_lines(chart: BatchLines, key: str) -> str:
    """Peak memory against batch size, one line per setup, the budget and largest batches marked."""
    unit_bytes = 10**9 if chart.unit == "GB" else 2**30
    top_batch = chart.top_batch
    y_top = max(chart.budget, max(v for line in chart.series for _, v in line.points)) * 1.05
    left, right, top, bottom, height = 70, 20, 20, 50, 300
    sx = (WIDTH - left - right) / (top_batch - 1 or 1)
    sy = (height - top - bottom) / y_top

    def xy(b, v):
        return left + (b - 1) * sx, height - bottom - v * sy

    body = []
    for t in _nice_ticks(0, y_top / unit_bytes):
        _, y = xy(1, t * unit_bytes)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, f"{t:g} {chart.unit}", "calc-chart-axis", "end"))
    for t in _nice_ticks(1, top_batch):
        x, _ = xy(t, 0)
        body.append(_text(x, height - bottom + 16, f"{t:g}", "calc-chart-axis", "middle"))
    body.append(_text((left + WIDTH - right) / 2, height - 8, "Batch B (sequences)", "calc-chart-axis", "middle"))
    _, by = xy(1, chart.budget)
    body.append(f'<line class="calc-chart-budget" x1="{left}" x2="{WIDTH - right}" y1="{by:.1f}" y2="{by:.1f}" '
                f'data-budget="{chart.budget}"/>')
    body.append(_text(WIDTH - right, by - 5, f"GPU: {in_unit(chart.budget, chart.unit, trim=True)}", anchor="end"))
    for n, (line, peak_at_largest) in enumerate(zip(chart.series, chart.peaks_at_largest)):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(b, v) for b, v in line.points))
        data = " ".join(f"{b}:{v}" for b, v in line.points)
        body.append(f'<polyline class="calc-series-{n}" fill="none" points="{points}" data-series="{escape(line.key)}" '
                    f'data-points="{data}"/>')
        if line.largest:
            x, y = xy(line.largest, peak_at_largest)
            body.append(f'<circle class="calc-series-{n}" cx="{x:.1f}" cy="{y:.1f}" r="4" data-series="{escape(line.key)}" '
                        f'data-largest-batch="{line.largest}">'
                        f"<title>{escape(f'{line.label}: largest batch {line.largest:,}')}</title></circle>")
        body.append(f'<rect class="calc-series-{n}" x="{left + 10}" y="{top + 4 + n * 16}" width="12" height="4"/>')
        body.append(_text(left + 28, top + 10 + n * 16, f"{line.label} (largest batch {line.largest:,})", "calc-chart-legend"))
    desc = "; ".join(f"{line.label}: at most {line.largest:,} sequences" for line in chart.series)
    return _svg(key, height, "Peak memory against batch size",
                f"Lines of peak memory per setup; the horizontal line is the GPU. {desc}.", "".join(body))


def context_lines(chart: ContextLines, key: str) -> str:
    """Activations per sequence against context length, log axes."""
    contexts = [s for s, _ in chart.series[0].points]
    values = [v for line in chart.series for _, v in line.points if v > 0]
    lo, hi = min(values), max(values)
    left, right, top, bottom, height = 70, 20, 20, 50, 320
    lx0, lx1 = math.log2(contexts[0]), math.log2(contexts[-1])
    ly0, ly1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ly1 = max(ly1, ly0 + 1)

    def xy(s, v):
        x = left + (math.log2(s) - lx0) / (lx1 - lx0) * (WIDTH - left - right)
        y = height - bottom - (math.log10(v) - ly0) / (ly1 - ly0) * (height - top - bottom)
        return x, y

    body = []
    for e in range(ly0, ly1 + 1):
        _, y = xy(contexts[0], 10**e)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, in_unit(10**e, "GB", 3, trim=True) if e >= 6 else f"10^{e} B",
                          "calc-chart-axis", "end"))
    for s in contexts:
        x, _ = xy(s, 10**ly0)
        body.append(_text(x, height - bottom + 16, f"{s:,}", "calc-chart-axis", "middle"))
    body.append(_text((left + WIDTH - right) / 2, height - 8, "Context s (tokens, log scale)", "calc-chart-axis", "middle"))
    if chart.context in contexts:
        x, _ = xy(chart.context, 10**ly0)
        body.append(f'<line class="calc-chart-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - bottom}"/>')
    for n, line in enumerate(chart.series):
        drawn = [(s, v) for s, v in line.points if v > 0]  # nothing kept (a line at zero) has no place on a log axis
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in (xy(s, v) for s, v in drawn))
        body.append(f'<polyline class="calc-series-{n}" fill="none" points="{points}" data-series="{line.key}" '
                    f'data-points="{" ".join(f"{s}:{v}" for s, v in line.points)}"/>')
        body.append(f'<rect class="calc-series-{n}" x="{left + 10}" y="{top + 4 + n * 16}" width="12" height="4"/>')
        body.append(_text(left + 28, top + 10 + n * 16, line.label, "calc-chart-legend"))
    return _svg(key, height, "Activations per sequence against context length",
                "Log-log lines: explicit attention grows with the square of the context, flash attention linearly.",
                "".join(body))


def block_bars(chart: BlockTensors, key: str) -> str:
    """One block's kept tensors, per sequence, largest first."""
    rows = chart.rows
    left, right, bar_h, gap = 300, 90, 16, 6
    height = 20 + len(rows) * (bar_h + gap)
    scale = (WIDTH - left - right) / max(r[2] for r in rows)
    body = []
    for n, (rk, name, nbytes, cat) in enumerate(rows):
        y = 10 + n * (bar_h + gap)
        short = name if len(name) <= 44 else name[:43] + "…"
        body.append(_text(left - 8, y + 12, short, anchor="end"))
        body.append(f'<rect class="calc-part-{cat}" x="{left}" y="{y}" width="{max(nbytes * scale, 0.5):.2f}" '
                    f'height="{bar_h}" data-row="{escape(rk)}" data-bytes="{nbytes}">'
                    f'<title>{escape(f"{name}: {in_unit(nbytes, chart.unit)}")}</title></rect>')
        body.append(_text(left + nbytes * scale + 6, y + 12, in_unit(nbytes, chart.unit), "calc-chart-axis"))
    return _svg(key, height, "What one block keeps",
                "Bars of the tensors one transformer block keeps for one sequence, largest first.", "".join(body))
