"""Named views: the HTML a page places, the same at build time and in the browser.

A page's directive `[[calc activations id=seed-table accounting=seed]]` and a live widget
both call `render_view("activations", params)`; inline numbers come from `render_value`.
Every view returns escaped HTML built from calc's own tables.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from calc.escape import escape

from calc.activations import activation_table
from calc.activations.seed import SEED_PRINTED
from calc.fixed import fixed_table
from calc.inputs import Inputs, parse_inputs
from calc.parameters import parameter_count, parameter_table
from calc.peak import largest_batch, moments_table, parts_table, peak_bytes
from calc.render import to_html
from calc.report import summary, summary_table
from calc.setup import TrainingSetup
from calc.table import SYMBOLS, symbol_values
from calc.units import grouped, in_unit


_NUM = ' class="num"'


def grid_html(key: str, caption: str, headers: list[str], rows: list[tuple[str, list[str]]], numeric_from: int = 1) -> str:
    """A plain HTML table from already-formatted cells; row ids are `{key}-{row key}`."""
    head = "".join(f'<th{_NUM if i >= numeric_from else ""}>{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        f'<tr id="{escape(key)}-{escape(rk)}" data-row="{escape(rk)}">'
        + "".join(f'<td{_NUM if i >= numeric_from else ""}>{escape(c)}</td>' for i, c in enumerate(cells))
        + "</tr>"
        for rk, cells in rows
    )
    return (f'<div class="calc-table" data-table="{escape(key)}"><table><caption>{escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _bytes_cell(nbytes: int, unit: str) -> str:
    return f"{in_unit(nbytes, unit)} ({grouped(nbytes)} bytes)"


def _short(x: Fraction) -> str:
    """A ratio to at most three decimals, trailing zeros dropped: 16, 18.093."""
    return f"{float(x):.3f}".rstrip("0").rstrip(".")


def view_summary(i: Inputs, key: str) -> str:
    s = summary(i.shape, i.setup, i.budget)
    fits = s["largest_batch"]
    sentence = (f"Largest batch whose peak fits in {in_unit(i.budget, i.unit, trim=True)}: {fits:,} sequences."
                if fits else f"Not even one sequence fits in {in_unit(i.budget, i.unit, trim=True)}.")
    return to_html(summary_table(i.shape, i.setup), i.unit, key) + f'<p class="calc-answer" id="{escape(key)}-largest-batch">{escape(sentence)}</p>'


def view_parameters(i: Inputs, key: str) -> str:
    return to_html(parameter_table(i.shape), i.unit, key)


def view_fixed(i: Inputs, key: str) -> str:
    return to_html(fixed_table(i.shape, i.setup), i.unit, key)


REGIMES = (("fp32-adamw", "fp32, AdamW", "fp32", "adamw"), ("fp32-sgd", "fp32, SGD with momentum", "fp32", "sgd"),
           ("bf16-adamw", "bf16 autocast, AdamW", "bf16", "adamw"), ("bf16-sgd", "bf16 autocast, SGD with momentum", "bf16", "sgd"))


def view_regimes(i: Inputs, key: str) -> str:
    """Bytes per parameter and in total for each precision and optimizer."""
    P = parameter_count(i.shape)
    rows = []
    for rk, label, dtype, optimizer in REGIMES:
        t = {r.key: r for r in fixed_table(i.shape, i.setup.replace(dtype=dtype, optimizer=optimizer, checkpoint="none")).rows}
        copies = t["weight-copies"].bytes if "weight-copies" in t else 0
        per_param = Fraction(sum(r.bytes for r in t.values()), P)
        rows.append((rk, [label, str(t["parameters"].bytes_per_value), str(t["gradients"].bytes_per_value),
                          str(t["optimizer"].bytes_per_value), _short(Fraction(copies, P)), _short(per_param), in_unit(sum(r.bytes for r in t.values()), i.unit)]))
    return grid_html(key, "Bytes per parameter by regime", ["Regime", "Parameters", "Gradients", "Optimizer state",
                     "bf16 copies (per parameter, averaged)", "Total per parameter", "Total"], rows)


def view_activations(i: Inputs, key: str) -> str:
    return to_html(activation_table(i.shape, i.setup), i.unit, key)


def view_moments(i: Inputs, key: str) -> str:
    setup = i.setup.replace(accounting="autograd")
    moments = moments_table(i.shape, setup)
    worst = max(moments.rows, key=lambda r: r.count)
    return (to_html(moments, i.unit, key) + f'<p class="calc-answer" id="{escape(key)}-worst">'
            f"{escape(f'The peak is {worst.name.lower()}: {in_unit(worst.count, i.unit)}.')}</p>"
            + to_html(parts_table(i.shape, setup), i.unit, key + "-parts"))


OPTION_SETS = (
    ("baseline", "fp32, explicit attention, nothing recomputed", dict(dtype="fp32", attention="explicit", checkpoint="none")),
    ("bf16", "bf16 autocast", dict(dtype="bf16", attention="explicit", checkpoint="none")),
    ("flash", "flash attention", dict(dtype="fp32", attention="flash", checkpoint="none")),
    ("checkpoint", "checkpoint every block", dict(dtype="fp32", attention="explicit", checkpoint="block")),
    ("bf16-flash", "bf16 + flash attention", dict(dtype="bf16", attention="flash", checkpoint="none")),
    ("all", "bf16 + flash + checkpoint every block", dict(dtype="bf16", attention="flash", checkpoint="block")),
)


def view_options(i: Inputs, key: str) -> str:
    """Before and after each saving, under the autograd accounting, at the inputs' batch."""
    rows = []
    base = None
    for rk, label, options in OPTION_SETS:
        setup = i.setup.replace(accounting="autograd", **options)
        kept = activation_table(i.shape, setup).bytes_for_batch()
        base = base or kept
        rows.append((rk, [label, in_unit(kept, i.unit), f"{float(Fraction(kept, base)):.1%}",
                          in_unit(peak_bytes(i.shape, setup), i.unit), grouped(largest_batch(i.shape, setup, i.budget))]))
    return grid_html(key, f"Savings, batch of {i.setup.batch:,}", ["Setup", "Activations kept", "Of the baseline",
                     "Peak of the step", f"Largest batch in {in_unit(i.budget, i.unit, trim=True)}"], rows)


def view_accountings(i: Inputs, key: str) -> str:
    """Every accounting and option set: activations per sequence (GB and GiB), largest batch."""
    claim = int(Fraction(SEED_PRINTED["claim_gb"]) * 10**9)
    rows = []
    for accounting in ("seed", "cs336"):
        for dtype in ("fp32", "bf16"):
            setup = i.setup.replace(accounting=accounting, dtype=dtype, attention="explicit", checkpoint="none", batch=1)
            rows.append(_accounting_row(i, f"{accounting}-{dtype}", f"{accounting}, {dtype}", setup, claim))
    for rk, label, options in OPTION_SETS:
        setup = i.setup.replace(accounting="autograd", batch=1, **options)
        rows.append(_accounting_row(i, f"autograd-{rk}", f"autograd, {label}", setup, claim))
    return grid_html(key, "Activations per sequence under each accounting", ["Accounting and options", "Per sequence (GB)",
                     "Per sequence (GiB)", "Against 2.265 GB", f"Largest batch in {in_unit(i.budget, i.unit, trim=True)}"], rows)


def _accounting_row(i: Inputs, rk: str, label: str, setup: TrainingSetup, claim: int):
    kept = activation_table(i.shape, setup).bytes_for_batch(1)
    return (rk, [label, in_unit(kept, "GB"), in_unit(kept, "GiB"), f"{float(Fraction(kept, claim)):.2f}×",
                 grouped(largest_batch(i.shape, setup, i.budget))])


QUADRATIC_CONTEXTS = (256, 512, 1024, 2048, 4096, 8192, 16384)


def view_quadratic(i: Inputs, key: str) -> str:
    """Per sequence, against context length: the softmax output (h·s² per layer) against the
    rest, and explicit against flash attention."""
    rows = []
    contexts = sorted(set(QUADRATIC_CONTEXTS) | {i.shape.context})
    for s in contexts:
        shape = i.shape.replace(context=s)
        explicit = activation_table(shape, i.setup.replace(accounting="autograd", attention="explicit", batch=1))
        flash = activation_table(shape, i.setup.replace(accounting="autograd", attention="flash", batch=1))
        quadratic = sum(r.bytes_for_batch(1) for r in explicit.rows if r.key in ("probabilities", "causal-mask"))
        total = explicit.bytes_for_batch(1)
        rows.append((f"s-{s}", [grouped(s), in_unit(quadratic, i.unit), in_unit(total - quadratic, i.unit),
                                f"{float(Fraction(quadratic, total)):.0%}", in_unit(total, i.unit), in_unit(flash.bytes_for_batch(1), i.unit)]))
    return grid_html(key, "Activations per sequence against context length", ["Context s", "Softmax output and mask (∝ s²)",
                     "Everything else (∝ s)", "Quadratic share", "Explicit attention", "Flash attention"], rows)


def view_output_layer(i: Inputs, key: str) -> str:
    """What the output layer keeps, against one block, per sequence."""
    setup = i.setup.replace(accounting="autograd", batch=1)
    rows = activation_table(i.shape, setup).rows
    head = sum(r.bytes_for_batch(1) for r in rows if r.stage == "head")
    logprobs = next(r.bytes for r in rows if r.key == "log-probs")
    block = sum(r.bytes for r in rows if r.stage == "block" and not r.per_step) // i.shape.layers
    return grid_html(key, "The output layer against one block (one sequence)", ["What", "Kept", "In blocks' worth"], [
        ("log-probs", ["Log-probabilities, s·V fp32", in_unit(logprobs, i.unit), f"{float(Fraction(logprobs, block)):.2f}"]),
        ("head", ["Everything the final norm, head and loss keep", in_unit(head, i.unit), f"{float(Fraction(head, block)):.2f}"]),
        ("block", ["One transformer block", in_unit(block, i.unit), "1"]),
    ])


def view_seed_checks(i: Inputs, key: str) -> str:
    """The seed's printed figures beside the exact ones."""
    seed = activation_table(i.shape, i.setup.replace(accounting="seed", dtype="fp32", batch=1))
    total = seed.total_bytes
    claim = Fraction(SEED_PRINTED["claim_gb"]) * 10**9
    per_position = claim / (i.shape.context * 4)
    rows = [
        ("total-values", ["Values in all", grouped(SEED_PRINTED["total_values"]), grouped(seed.total_count)]),
        ("total-bytes", ["Bytes in all (4 bytes a value)", grouped(SEED_PRINTED["total_bytes"]), grouped(total)]),
        ("total-unit", ["The same bytes, with a unit", SEED_PRINTED["total_as_printed"],
                        f"{in_unit(total, 'GiB', 2)} = {in_unit(total, 'GB', 2)}"]),
        ("per-position", [f"2.265 GB ÷ ({i.shape.context:,} × 4 bytes), values per position",
                          grouped(SEED_PRINTED["values_per_position"]), f"{float(per_position):,.1f}"]),
    ]
    return grid_html(key, "The seed's figures, checked", ["Figure", "The seed prints", "Exactly"], rows)


def view_validation(i: Inputs, key: str, results: dict | None = None) -> str:
    """Each committed PyTorch measurement beside calc's prediction for the same setup."""
    from calc.shape import ModelShape

    rows = []
    for c in (results or {}).get("cases", []):
        shape = ModelShape(**c["shape"])
        setup = TrainingSetup(batch=c["batch"], attention=c["attention"], checkpoint=c["checkpoint"], dtype=c["dtype"])
        predicted = activation_table(shape, setup).bytes_for_batch()
        rk = f"{c['name']}-b{c['batch']}-{c['attention']}-{c['checkpoint']}-{c['dtype']}"
        rows.append((rk, [c["name"], str(c["batch"]), c["attention"], c["checkpoint"], c["dtype"], c["tensors"],
                          grouped(c["activations"]), grouped(predicted), grouped(predicted - c["activations"])]))
    torch = (results or {}).get("torch", "?")
    return grid_html(key, f"Saved for backward: PyTorch {torch} (CPU) against calc, in bytes",
                     ["Shape", "B", "Attention", "Checkpoint", "dtype", "Tensors", "Measured", "calc", "Difference"], rows, 6)


def view_formulas(i: Inputs, key: str) -> str:
    """Every activation formula of every accounting, in LaTeX (rendered by KaTeX)."""
    parts = []
    for accounting in ("seed", "cs336", "autograd"):
        table = activation_table(i.shape, i.setup.replace(accounting=accounting))
        items = "".join(f'<tr id="{escape(key)}-{accounting}-{escape(r.key)}"><td>{escape(r.name)}</td>'
                        f'<td><span class="arithmatex calc-math">\\({escape(r.formula.latex())}\\)</span></td>'
                        f'<td class="num">{r.bytes_per_value}</td></tr>' for r in table.rows)
        parts.append(f'<div class="calc-table" data-table="{accounting}-formulas"><table><caption>{escape(table.title)}'
                     f"</caption><thead><tr><th>Tensor</th><th>Values per sequence</th><th class=\"num\">Bytes each</th>"
                     f"</tr></thead><tbody>{items}</tbody></table></div>")
    return "".join(parts)


def view_block_formula(i: Inputs, key: str) -> str:
    """The values one block keeps per sequence, as one formula (rows of the autograd table)."""
    from calc.activations.autograd import block_rows
    from calc.table import combine

    setup = i.setup.replace(accounting="autograd", checkpoint="none")
    formula = combine((r.formula for r in block_rows(i.shape, setup) if not r.per_step), drop="L")
    return (f'<div class="arithmatex calc-formula" data-text="{escape(formula.text())}">'
            f"\\[{escape(formula.latex())}\\]</div>")


def view_glossary(i: Inputs, key: str) -> str:
    values = symbol_values(i.shape)
    rows = [(name, [plain, meaning, grouped(values[name]) if name in values else "—"]) for name, (plain, _, meaning) in SYMBOLS.items()]
    return grid_html(key, "Symbols", ["Symbol", "Meaning", "For this model"], rows, 2)


def _option_setups(i: Inputs, keys=None) -> list:
    return [(rk, label, i.setup.replace(accounting="autograd", **options))
            for rk, label, options in OPTION_SETS if keys is None or rk in keys]


def view_chart_stack(i: Inputs, key: str, bars: str = "options") -> str:
    """Stacked bars: the option sets (bars=options), the accountings (bars=accountings), or
    the inputs' own setup (bars=page)."""
    if bars == "accountings":
        setups = [(a, {"seed": "the seed's list", "cs336": "CS336 list", "autograd": "what autograd keeps"}[a],
                   i.setup.replace(accounting=a)) for a in ("seed", "cs336", "autograd")]
    elif bars == "page":
        setups = [("page", "these inputs", i.setup)]
    else:
        setups = _option_setups(i)
    from calc.charts import stacked_bars

    return stacked_bars(i, key, setups)


def view_chart_batch(i: Inputs, key: str) -> str:
    from calc.charts import batch_lines

    return batch_lines(i, key, _option_setups(i, ("baseline", "bf16-flash", "checkpoint", "all")))


def view_chart_context(i: Inputs, key: str) -> str:
    from calc.charts import context_lines

    return context_lines(i, key)


def view_chart_block(i: Inputs, key: str) -> str:
    from calc.charts import block_bars

    return block_bars(i, key)


def _setup_label(setup: TrainingSetup) -> str:
    return (f"{setup.accounting}, {setup.dtype}, {setup.attention} attention, checkpoint {setup.checkpoint}, "
            f"{setup.optimizer}, B = {setup.batch:,}")


def view_compare(i: Inputs, key: str, params: dict | None = None) -> str:
    """Two setups side by side, row by row, with B's ratio to A."""
    from calc.extras import compare_setup

    a, b = i.setup, compare_setup(i, params or {})
    sa, sb = summary(i.shape, a, i.budget), summary(i.shape, b, i.budget)
    rows = []
    for rk, label in (("parameters", "Parameters"), ("gradients", "Gradients"), ("optimizer", "Optimizer state"),
                      ("weight_copies", "bf16 weight copies"), ("activations", "Activations kept (the batch)"),
                      ("activations_per_sequence", "Activations kept, one sequence"), ("peak", "Peak of the step")):
        x, y = sa["bytes"][rk], sb["bytes"][rk]
        ratio = f"{float(Fraction(y, x)):.3f}×" if x else ("—" if not y else "new")
        rows.append((rk.replace("_", "-"), [label, in_unit(x, i.unit), in_unit(y, i.unit), ratio]))
    x, y = sa["largest_batch"], sb["largest_batch"]
    rows.append(("largest-batch", [f"Largest batch in {in_unit(i.budget, i.unit, trim=True)}", grouped(x), grouped(y),
                                   f"{float(Fraction(y, x)):.3f}×" if x else "—"]))
    caption = f"A: {_setup_label(a)}. B: {_setup_label(b)}."
    return grid_html(key, caption, ["", "Setup A", "Setup B", "B / A"], rows)


def view_reverse(i: Inputs, key: str, params: dict | None = None) -> str:
    """The setups nearest to a claimed figure, ranked by relative error, each with a link."""
    from urllib.parse import urlencode

    from calc.extras import claim
    from calc.reverse import PAGES, ROW_FILTERS, search

    claimed, unit, scope = claim(params or {})
    scope_text = "per sequence" if scope == "sequence" else f"for a batch of {i.setup.batch:,}"
    matches = search(i, claimed, unit, scope)
    filters = {k: label for k, label, _ in ROW_FILTERS}
    body = []
    for n, m in enumerate(matches, 1):
        link = "../" + PAGES[m.accounting] + "?" + urlencode({**m.params(), **({"preset": i.preset} if i.preset != "cs336-gpt2-xl" else {})})
        desc = f"{m.accounting}, {m.dtype}" + (f", {m.attention} attention, checkpoint {m.checkpoint}" if m.accounting == "autograd" else "")
        body.append(f'<tr id="{escape(key)}-{n}" data-row="{n}" data-error="{m.error.numerator}/{m.error.denominator}">'
                    f"<td>{escape(desc)}</td><td>{escape(filters[m.rows])}</td><td>{escape(m.reading)}</td>"
                    f'<td class="num">{escape(in_unit(m.predicted, "GB"))}</td><td class="num">{escape(in_unit(m.predicted, "GiB"))}</td>'
                    f'<td class="num">{escape(_percent(m.error))}</td><td><a href="{escape(link)}">open</a></td></tr>')
    best = matches[0]
    verdict = (f"Nearest to {in_unit(claimed, unit)} {scope_text}: {best.accounting}, {best.dtype}"
               + (f", {best.attention} attention, checkpoint {best.checkpoint}" if best.accounting == "autograd" else "")
               + f", {filters[best.rows]}, {best.reading} — "
               + ("exactly." if best.error == 0 else f"{_percent(best.error)} away."))
    head = "".join(f"<th{_NUM if n >= 3 and n < 6 else ''}>{h}</th>" for n, h in enumerate(
        ["Accounting and options", "Rows counted", "Reading of the figure", "Predicted (GB)", "Predicted (GiB)", "Off by", ""]))
    return (f'<p class="calc-answer" id="{escape(key)}-verdict">{escape(verdict)}</p>'
            f'<div class="calc-table" data-table="{escape(key)}"><table><caption>{escape(f"Nearest setups to {in_unit(claimed, unit)} {scope_text}")}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def view_per_gpu(i: Inputs, key: str) -> str:
    from calc.parallel import per_gpu_table

    return to_html(per_gpu_table(i.shape, i.setup), i.unit, key)


def _layouts(i: Inputs, vary: str) -> list:
    """The inputs' layout with one knob varied: ZeRO stage, tensor parallelism, or pipeline."""
    from calc.parallel import check_layout

    s = i.setup
    if vary == "zero":
        options = [(f"zero-{z}", f"ZeRO stage {z}, dp {s.dp}", s.replace(zero=z)) for z in range(4)]
    elif vary == "tp":
        options = [(f"tp-{t}{'-sp' if sp else ''}", f"tp {t}" + (" + sequence parallel" if sp else ""), s.replace(tp=t, sp=sp))
                   for t in (1, 2, 4, 8) for sp in ((False, True) if t > 1 else (False,))]
    else:
        options = [(f"pp-{p}", f"pp {p}, {s.microbatches} micro-batches", s.replace(pp=p)) for p in (1, 2, 4, 8, 16)]
    valid = []
    for rk, label, setup in options:
        try:
            check_layout(i.shape, setup)
        except ValueError:
            continue
        valid.append((rk, label, setup))
    return valid


def view_chart_gpu(i: Inputs, key: str, vary: str = "zero") -> str:
    """Per-GPU stacked bars across layouts that vary one knob."""
    from calc.charts import bar_chart
    from calc.parallel import per_gpu_table

    bars = []
    for rk, label, setup in _layouts(i, vary):
        rows = {r.key: r.bytes for r in per_gpu_table(i.shape, setup).rows}
        parts = [("parameters", "Parameters", rows["parameters"]), ("gradients", "Gradients", rows["gradients"]),
                 ("optimizer", "Optimizer state", rows["optimizer"]), ("activations", "Activations in flight", rows["activations"])]
        bars.append((rk, label, parts, None))
    return bar_chart(i, key, "Memory per GPU", "Stacked bars of the fullest GPU's memory for each layout.", bars, None)


def view_solver(i: Inputs, key: str) -> str:
    """The fewest GPUs (and their layout) whose fullest GPU fits the budget."""
    from calc.parallel import per_gpu_bytes, smallest_layout

    best = smallest_layout(i.shape, i.setup, i.budget)
    if best is None:
        text = (f"No layout with up to 8-way tensor parallelism fits {in_unit(i.budget, i.unit, trim=True)} per GPU "
                f"for a global batch of {i.setup.global_batch:,}.")
        return f'<p class="calc-answer" id="{escape(key)}-answer">{escape(text)}</p>'
    gpus = best.dp * best.tp * best.pp
    text = (f"Fewest GPUs for a global batch of {i.setup.global_batch:,} in {in_unit(i.budget, i.unit, trim=True)} each: "
            f"{gpus:,} — dp {best.dp} (ZeRO stage {best.zero}) × tp {best.tp}{' with sequence parallelism' if best.sp else ''} "
            f"× pp {best.pp}, {best.microbatches:,} micro-batches of one sequence; the fullest GPU holds "
            f"{in_unit(per_gpu_bytes(i.shape, best), i.unit)}.")
    from urllib.parse import urlencode

    link = "?" + urlencode({k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in
                            (("dp", best.dp), ("zero", best.zero), ("tp", best.tp), ("sp", best.sp), ("pp", best.pp),
                             ("microbatches", best.microbatches), ("batch", 1))})
    return (f'<p class="calc-answer" id="{escape(key)}-answer">{escape(text)} '
            f'<a href="{escape(link)}">Show this layout</a></p>')


def _percent(x: Fraction) -> str:
    if x == 0:
        return "0 (exact)"
    return f"{float(x):.2%}" if x < 10 else f"{float(x):.1f}×"


VIEWS = {
    "summary": view_summary, "parameters": view_parameters, "fixed": view_fixed, "regimes": view_regimes,
    "activations": view_activations, "moments": view_moments, "options": view_options,
    "accountings": view_accountings, "quadratic": view_quadratic, "output-layer": view_output_layer,
    "seed-checks": view_seed_checks, "validation": view_validation, "formulas": view_formulas, "glossary": view_glossary,
    "block-formula": view_block_formula, "chart-stack": view_chart_stack, "chart-batch": view_chart_batch,
    "chart-context": view_chart_context, "chart-block": view_chart_block, "compare": view_compare,
    "reverse": view_reverse, "per-gpu": view_per_gpu, "chart-gpu": view_chart_gpu, "solver": view_solver,
}
PARAM_VIEWS = {"compare", "reverse"}
PARALLEL_VIEWS = {"per-gpu", "chart-gpu", "solver"}
"""Views that read the parallel layout (dp, zero, tp, sp, pp, microbatches)."""
"""Views that read parameters beyond one setup (b_* fields, the claim)."""
OPTION_KEYS = {"chart-stack": ("bars",), "chart-gpu": ("vary",)}
"""View options given in a directive that are not inputs (bars=accountings)."""
STATIC_VIEWS = {"validation"}
"""Views of committed data rather than of the inputs: not recomputed in the browser."""


def render_view(name: str, params: dict, key: str | None = None, **extra) -> str:
    """HTML of view `name` for string `params` (see calc.inputs). Raises InputError or KeyError.

    A view is a pure function of its parameters, so the last few hundred renders are kept:
    a reader stepping an input back and forth gets each table again at once."""
    if not extra:
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
    inputs = parse_inputs(params)
    if name in PARAM_VIEWS:
        extra["params"] = params
    for option in OPTION_KEYS.get(name, ()):
        if option in params:
            extra[option] = params[option]
    return VIEWS[name](inputs, key or name, **extra)


def _value_text(inputs: Inputs, name: str) -> str:
    s = summary(inputs.shape, inputs.setup, inputs.budget)
    if name == "parameters":
        return grouped(s["parameters"])
    if name == "largest_batch":
        return grouped(s["largest_batch"])
    if name == "budget":
        return in_unit(inputs.budget, inputs.unit, trim=True)
    if name.startswith("bytes."):
        return in_unit(s["bytes"][name.split(".", 1)[1]], inputs.unit)
    if name.startswith("exact."):
        return grouped(s["bytes"][name.split(".", 1)[1]])
    raise KeyError(f"unknown value {name!r}")


def render_value(name: str, params: dict) -> str:
    """One number as text: `parameters`, `largest_batch`, `budget`, `bytes.<key>` (in the
    unit) or `exact.<key>` (bytes, grouped), keys as in calc.report.summary()['bytes']."""
    return _value_text(parse_inputs(params), name)
