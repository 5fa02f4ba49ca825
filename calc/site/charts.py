"""SVG pictures drawn by calc: the same markup at build time and in the browser.

Every picture has a <title> and a <desc>, carries each plotted number as a `data-bytes`
attribute (exact bytes), and comes with its numbers as a table. Pixel positions are the
only inexact arithmetic here; the numbers shown are calc's integers.

Each picture is drawn twice: 720 units wide for a desktop and 360 for a phone, where it
shows at about its own size, so its 11-px text stays 11 px (the page's CSS shows one).
Lines are told apart by colour, dash and marker shape, never by colour alone.
"""

from __future__ import annotations

import math

from calc.comparisons import BatchLines, Bars, BlockTensors, ContextLines
from calc.site.escape import escape
from calc.site.html import grid_html
from calc.units import in_unit

WIDE, NARROW = 720, 360
"""The pictures' widths in SVG units: a desktop's, and a phone's."""

CHAR_WIDTH = 6.2
"""About how wide one character of the 11-px labels is, in SVG units (to wrap a legend)."""

MARKERS = ("circle", "square", "triangle", "diamond")
"""Each line's marker shape, by series number: a second cue beside its colour and dash."""


def _svg(key: str, width: int, height: int, title: str, desc: str, body: str) -> str:
    k = escape(key) + ("" if width == WIDE else "-narrow")
    size = "wide" if width == WIDE else "narrow"
    return (f'<svg class="calc-chart calc-chart-{size}" id="{k}-svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="{k}-title {k}-desc" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{k}-title">{escape(title)}</title><desc id="{k}-desc">{escape(desc)}</desc>{body}</svg>')


def _marker(n: int, x: float, y: float, extra: str = "", title: str = "") -> str:
    """Series n's marker at (x, y): a circle, square, triangle or diamond."""
    shape = MARKERS[n % len(MARKERS)]
    cls = f'class="calc-series-{n} calc-marker" data-shape="{shape}"'
    tip = f"<title>{escape(title)}</title>" if title else ""
    if shape == "circle":
        return f'<circle {cls} cx="{x:.1f}" cy="{y:.1f}" r="4"{extra}>{tip}</circle>'
    if shape == "square":
        return f'<rect {cls} x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7"{extra}>{tip}</rect>'
    corners = (((x, y - 5), (x + 4.5, y + 3.5), (x - 4.5, y + 3.5)) if shape == "triangle"
               else ((x, y - 5), (x + 5, y), (x, y + 5), (x - 5, y)))
    points = " ".join(f"{px:.1f},{py:.1f}" for px, py in corners)
    return f'<polygon {cls} points="{points}"{extra}>{tip}</polygon>'


def _legend_entry(n: int, x: float, y: float, label: str) -> str:
    """A line's legend entry: a short stretch of its line with its marker, then its label."""
    return (f'<line class="calc-series-{n}" x1="{x:.1f}" x2="{x + 22:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            + _marker(n, x + 11, y) + _text(x + 28, y + 4, label, "calc-chart-legend"))


def _text(x: float, y: float, text: str, cls: str = "calc-chart-label", anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}">{escape(text)}</text>'


def _numbers(key: str, chart) -> str:
    """The picture's numbers (the engine's Grid), folded under it."""
    return (f'<details class="calc-chart-numbers"><summary>The numbers in this picture</summary>'
            f"{grid_html(chart.numbers(), key + '-numbers')}</details>")


def chart_html(chart, key: str) -> str:
    """The SVG picture of a chart's data, wide and narrow, and its numbers as a table."""
    draw = {Bars: bar_chart, BatchLines: batch_lines, ContextLines: context_lines, BlockTensors: block_bars}[type(chart)]
    return draw(chart, key, WIDE) + draw(chart, key, NARROW) + _numbers(key, chart)


def _unit_bytes(unit: str) -> int:
    return 10**9 if unit == "GB" else 2**30


def bar_chart(chart: Bars, key: str, width: int = WIDE) -> str:
    """Horizontal stacked bars on a value axis, the GPU budget as a line, each bar's marker
    as a tick. Narrow, each bar's label sits above it and the bar has the whole width."""
    top = max([chart.budget] + [max(b.total, b.marker or 0) for b in chart.bars]) * 1.05
    narrow = width == NARROW
    left, right, bar_h = (10, 14, 22) if narrow else (270, 20, 26)
    gap = 34 if narrow else 18
    first = 44 if narrow else 30
    bottom = first + len(chart.bars) * (bar_h + gap) - (gap - 10 if narrow else 0)
    scale = (width - left - right) / top
    unit_bytes = _unit_bytes(chart.unit)
    body = []
    for t in _nice_ticks(0, top / unit_bytes, 5 if narrow else 6):
        x = left + t * unit_bytes * scale
        body.append(f'<line class="calc-chart-grid" x1="{x:.1f}" x2="{x:.1f}" y1="{first - 6}" y2="{bottom}"/>')
        body.append(_text(x, bottom + 14, f"{t:g}", "calc-chart-axis", "middle"))
    body.append(_text((left + width - right) / 2, bottom + 30, f"Memory ({chart.unit})", "calc-chart-axis", "middle"))
    bx = left + chart.budget * scale  # the GPU's line, under the bars' labels (which mask it: calc.css)
    body.append(f'<line class="calc-chart-budget" x1="{bx:.2f}" x2="{bx:.2f}" y1="{first - 12}" y2="{bottom}" '
                f'data-budget="{chart.budget}"/>')
    gpu = f"GPU: {in_unit(chart.budget, chart.unit, trim=True)}"
    gpu_x, gpu_anchor = _label_place(bx, len(gpu) * CHAR_WIDTH, width - right)
    body.append(_text(gpu_x, first - 16, gpu, anchor=gpu_anchor))
    for n, bar in enumerate(chart.bars):
        y = first + n * (bar_h + gap)
        if narrow:
            body.append(_text(left, y - 5, bar.label))
        else:
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
    lx, ly = 10, bottom + 48
    for part, part_label in _legend_parts(chart):
        step = 14 + CHAR_WIDTH * len(part_label) + 14
        if lx + step > width and lx > 10:
            lx, ly = 10, ly + 18
        body.append(f'<rect class="calc-part-{part}" x="{lx}" y="{ly - 9}" width="10" height="10"/>')
        body.append(_text(lx + 14, ly, part_label, "calc-chart-legend"))
        lx += step
    if any(bar.marker is not None for bar in chart.bars):
        if lx + 150 > width:
            lx, ly = 10, ly + 18
        body.append(f'<line class="calc-chart-peak" x1="{lx + 5}" x2="{lx + 5}" y1="{ly - 11}" y2="{ly + 2}"/>')
        body.append(_text(lx + 14, ly, f"{chart.marker_label or 'Total'} of the step", "calc-chart-legend"))
    height = ly + 12
    desc = "; ".join(f"{b.label}: {in_unit(b.marker if b.marker is not None else b.total, chart.unit)}" for b in chart.bars)
    return _svg(key, width, height, chart.title, f"{chart.what} {desc}.", "".join(body))


def _label_place(x: float, text_width: float, right: float) -> tuple[float, str]:
    """Where a label about the vertical line at `x` goes, and its text-anchor, so that all of
    it stays between 0 and `right`: centred on the line, else ending at it, else starting
    at it."""
    if text_width / 2 <= x <= right - text_width / 2:
        return x, "middle"
    if x >= text_width:
        return min(x, right), "end"
    return max(x, 0), "start"


def _legend_parts(chart: Bars) -> list[tuple[str, str]]:
    """(part, label) of every part some bar shows, in the bars' order (every bar has the
    same parts, some of them empty)."""
    shown = {part for bar in chart.bars for part, _, nbytes in bar.parts if nbytes}
    return [(part, label) for part, label, _ in chart.bars[0].parts if part in shown]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """At most about `count` round values (1, 2 or 5 times a power of ten apart) from low to high."""
    step = 10 ** math.floor(math.log10(max(high - low, 1) / count))
    for m in (1, 2, 5, 10):
        if (high - low) / (step * m) <= count:
            step *= m
            break
    start = math.ceil(low / step) * step
    return [start + k * step for k in range(int((high - start) / step) + 1)]


def _series_line(n: int, points: str, key: str, data: str) -> str:
    return (f'<polyline class="calc-series-{n}" fill="none" points="{points}" data-series="{escape(key)}" '
            f'data-points="{data}"/>')


def _legend_height(labels: list[str]) -> int:
    """Height of a legend of one line per label, in SVG units."""
    return 18 * len(labels) + 6


def batch_lines(chart: BatchLines, key: str, width: int = WIDE) -> str:
    """Peak memory against batch size, one line per setup, the budget and largest batches
    marked; the legend under the plot."""
    narrow = width == NARROW
    unit_bytes = _unit_bytes(chart.unit)
    top_batch = chart.top_batch
    y_top = max(chart.budget, max(v for line in chart.series for _, v in line.points)) * 1.05
    left, right, top, plot = (48, 14, 20, 200) if narrow else (70, 20, 20, 230)
    labels = [f"{line.label} (largest batch {line.largest:,})" for line in chart.series]
    legend_top = top + plot + 44
    height = legend_top + _legend_height(labels)
    sx = (width - left - right) / (top_batch - 1 or 1)
    sy = plot / y_top

    def xy(b, v):
        return left + (b - 1) * sx, top + plot - v * sy

    body = []
    for t in _nice_ticks(0, y_top / unit_bytes, 4 if narrow else 5):
        _, y = xy(1, t * unit_bytes)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, f"{t:g} {chart.unit}", "calc-chart-axis", "end"))
    for t in _nice_ticks(1, top_batch, 4 if narrow else 8):
        x, _ = xy(t, 0)
        body.append(_text(x, top + plot + 16, f"{t:g}", "calc-chart-axis", "middle"))
    body.append(_text((left + width - right) / 2, top + plot + 32, "Batch B (sequences)", "calc-chart-axis", "middle"))
    _, by = xy(1, chart.budget)
    body.append(f'<line class="calc-chart-budget" x1="{left}" x2="{width - right}" y1="{by:.1f}" y2="{by:.1f}" '
                f'data-budget="{chart.budget}"/>')
    body.append(_text(width - right, by - 5, f"GPU: {in_unit(chart.budget, chart.unit, trim=True)}", anchor="end"))
    markers = []
    for n, (line, peak_at_largest) in enumerate(zip(chart.series, chart.peaks_at_largest)):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(b, v) for b, v in line.points))
        body.append(_series_line(n, points, line.key, " ".join(f"{b}:{v}" for b, v in line.points)))
        if line.largest:
            x, y = xy(line.largest, peak_at_largest)
            markers.append(_marker(n, x, y, f' data-series="{escape(line.key)}" data-largest-batch="{line.largest}"',
                                   f"{line.label}: largest batch {line.largest:,}"))
        body.append(_legend_entry(n, 10, legend_top + 18 * n, labels[n]))
    body.extend(reversed(markers))  # the first series' markers on top, over the lines drawn after it
    desc = "; ".join(f"{line.label}: at most {line.largest:,} sequences" for line in chart.series)
    return _svg(key, width, height, "Peak memory against batch size",
                f"Lines of peak memory per setup, each marked at its largest batch; the horizontal line is the GPU. "
                f"{desc}.", "".join(body))


def context_lines(chart: ContextLines, key: str, width: int = WIDE) -> str:
    """Activations per sequence against context length, log axes, a marker at every point;
    the legend under the plot."""
    narrow = width == NARROW
    contexts = [s for s, _ in chart.series[0].points]
    values = [v for line in chart.series for _, v in line.points if v > 0]
    lo, hi = min(values), max(values)
    left, right, top, plot = (56, 24, 20, 210) if narrow else (70, 24, 20, 250)
    legend_top = top + plot + 44
    height = legend_top + _legend_height([line.label for line in chart.series])
    lx0, lx1 = math.log2(contexts[0]), math.log2(contexts[-1])
    ly0, ly1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ly1 = max(ly1, ly0 + 1)

    def xy(s, v):
        x = left + (math.log2(s) - lx0) / (lx1 - lx0) * (width - left - right)
        y = top + plot - (math.log10(v) - ly0) / (ly1 - ly0) * plot
        return x, y

    body = []
    for e in range(ly0, ly1 + 1):
        _, y = xy(contexts[0], 10**e)
        body.append(f'<line class="calc-chart-grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>')
        body.append(_text(left - 6, y + 4, in_unit(10**e, "GB", 3, trim=True) if e >= 6 else f"10^{e} B",
                          "calc-chart-axis", "end"))
    for n, s in enumerate(contexts):
        if narrow and n % 2:
            continue  # every other context on a phone, so the labels do not collide
        x, _ = xy(s, 10**ly0)
        body.append(_text(x, top + plot + 16, f"{s:,}", "calc-chart-axis", "middle"))
    body.append(_text((left + width - right) / 2, top + plot + 32, "Context s (tokens, log scale)", "calc-chart-axis",
                      "middle"))
    if chart.context in contexts:
        x, _ = xy(chart.context, 10**ly0)
        body.append(f'<line class="calc-chart-marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot}"/>')
    markers = []
    for n, line in enumerate(chart.series):
        drawn = [(s, v) for s, v in line.points if v > 0]  # nothing kept (a line at zero) has no place on a log axis
        placed = [xy(s, v) for s, v in drawn]
        body.append(_series_line(n, " ".join(f"{px:.1f},{py:.1f}" for px, py in placed), line.key,
                                 " ".join(f"{s}:{v}" for s, v in line.points)))
        markers.append("".join(_marker(n, px, py) for px, py in placed))
        body.append(_legend_entry(n, 10, legend_top + 18 * n, line.label))
    body.extend(reversed(markers))  # the first series' markers on top, over the lines drawn after it
    return _svg(key, width, height, "Activations per sequence against context length",
                "Log-log lines: explicit attention grows with the square of the context, flash attention linearly.",
                "".join(body))


def block_bars(chart: BlockTensors, key: str, width: int = WIDE) -> str:
    """One block's kept tensors, per sequence, largest first. Narrow, each name sits above
    its bar."""
    narrow = width == NARROW
    rows = chart.rows
    left, right, bar_h = (10, 80, 12) if narrow else (300, 90, 16)
    gap = 22 if narrow else 6
    first = 22 if narrow else 10
    height = first + len(rows) * (bar_h + gap)
    scale = (width - left - right) / max(r[2] for r in rows)
    longest = 54 if narrow else 44
    body = []
    for n, (rk, name, nbytes, cat) in enumerate(rows):
        y = first + n * (bar_h + gap)
        short = name if len(name) <= longest else name[:longest - 1] + "…"
        body.append(_text(left, y - 4, short) if narrow else _text(left - 8, y + 12, short, anchor="end"))
        body.append(f'<rect class="calc-part-{cat}" x="{left}" y="{y}" width="{max(nbytes * scale, 0.5):.2f}" '
                    f'height="{bar_h}" data-row="{escape(rk)}" data-bytes="{nbytes}">'
                    f'<title>{escape(f"{name}: {in_unit(nbytes, chart.unit)}")}</title></rect>')
        body.append(_text(left + nbytes * scale + 6, y + bar_h - 3, in_unit(nbytes, chart.unit), "calc-chart-axis"))
    return _svg(key, width, height, "What one block keeps",
                "Bars of the tensors one transformer block keeps for one sequence, largest first.", "".join(body))
