"""Tables that set several setups side by side, and the numbers behind each picture.

Each function takes the reader's Inputs and returns a Grid (cells written as text, units
named), a Sentence, or a picture's data with its numbers as a Grid — no HTML. The site
draws them (calc.site), the CLI prints them (`python -m calc --view NAME`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from calc.activations import activation_table, block_rows, bytes_per_block, quadratic_bytes
from calc.activations.seed import SEED_PRINTED
from calc.categories import CATEGORIES
from calc.errors import FieldError
from calc.fields import BY_NAME
from calc.fit import largest_batch, peak_bytes
from calc.peak import pass_bytes
from calc.fixed import fixed_table
from calc.gpus import GPUS
from calc.inputs import Inputs, check_setup
from calc.backward import walks_apply
from calc.cuda import MEASURED_ARCH
from calc.layout.frameworks import FRAMEWORKS, framework_of
from calc.layout.per_gpu import divisors, per_gpu_table, quotient_divisors
from calc.layout.schedule import SCHEDULES
from calc.layout.solver import MAX_EVALUATIONS, SOLVER_MAX_PP, SOLVER_MAX_TP, Layout, search
from calc.layout.split import check_layout, stages
from calc.parameters import parameter_count
from calc.report import summary
from calc.setup import MAX_BATCH, MAX_PARALLEL, TrainingSetup
from calc.shape import CROSS_ENTROPIES, PICKS, SOFTMAXES, ModelShape
from calc.table import SYMBOLS, Grid, Sentence, combine, grid, symbol_values
from calc.units import grouped, in_unit
from calc.lora import EIGHT_BIT_OPTIMIZERS, quant_label, trains_adapters

OPTION_SETS = (
    ("baseline", "fp32, explicit attention, nothing recomputed", dict(dtype="fp32", attention="explicit", checkpoint="none")),
    ("bf16", "bf16 autocast", dict(dtype="bf16", attention="explicit", checkpoint="none")),
    ("flash", "flash attention", dict(dtype="fp32", attention="flash", checkpoint="none")),
    ("checkpoint", "checkpoint every block", dict(dtype="fp32", attention="explicit", checkpoint="block")),
    ("bf16-flash", "bf16 + flash attention", dict(dtype="bf16", attention="flash", checkpoint="none")),
    ("all", "bf16 + flash + checkpoint every block", dict(dtype="bf16", attention="flash", checkpoint="block")),
)
"""The savings the pages compare, each as changes to the reader's setup (autograd accounting)."""

REGIMES = (("fp32-adamw", "fp32, AdamW", "fp32", "adamw"), ("fp32-sgd", "fp32, SGD with momentum", "fp32", "sgd"),
           ("bf16-adamw", "bf16 autocast, AdamW", "bf16", "adamw"),
           ("bf16-sgd", "bf16 autocast, SGD with momentum", "bf16", "sgd"),
           ("bf16-master-adamw", "bf16 weights, fp32 master, AdamW", "bf16-master", "adamw"),
           ("bf16-master-sgd", "bf16 weights, fp32 master, SGD with momentum", "bf16-master", "sgd"))

QUADRATIC_CONTEXTS = (256, 512, 1024, 2048, 4096, 8192, 16384)
"""Context lengths of the quadratic-term table (the reader's own is added)."""
CHART_CONTEXTS = tuple(2**k for k in range(7, 16))
"""Context lengths of the context picture: 128 … 32,768 tokens."""

FIXED_PARTS = (("parameters", "Parameters"), ("gradients", "Gradients"), ("optimizer", "Optimizer state"),
               ("weight-copies", "bf16 weight copies"))


def ratio(x: Fraction) -> str:
    """A ratio to at most three decimals, trailing zeros dropped: 16, 18.093."""
    return f"{float(x):.3f}".rstrip("0").rstrip(".")


def budget_text(i: Inputs) -> str:
    return i.budget_label


def supported(shape: ModelShape, setup: TrainingSetup) -> bool:
    """Whether calc answers this setup (calc.inputs.check_setup): the implementation has
    rows for it (a from-scratch model has no flash attention, for one), its attention
    kernel is derived, and the reader's layout takes it (context parallelism needs fused
    attention)."""
    try:
        check_setup(shape, setup)
    except FieldError:
        return False
    return True


def option_setups(i: Inputs, keys=None) -> list[tuple[str, str, TrainingSetup]]:
    """(key, label, setup) of each option set applied to the reader's setup, where the
    reader's implementation has it."""
    setups = [(rk, label, i.setup.replace(accounting="autograd", **options))
              for rk, label, options in OPTION_SETS if keys is None or rk in keys]
    setups = [(rk, label, setup) for rk, label, setup in setups if supported(i.shape, setup)]
    if not setups:
        raise FieldError("implementation", "the option sets are counted with the autograd accounting, which has no "
                                           "rows for this model and code: change the model's architecture or code")
    return setups


def largest_batch_sentence(i: Inputs) -> Sentence:
    fits = largest_batch(i.shape, i.setup, i.budget)
    text = (f"Largest batch whose peak fits in {budget_text(i)}: {fits:,} sequence{'s' if fits != 1 else ''}."
            if fits else f"Not even one sequence fits in {budget_text(i)}.")
    return Sentence("largest-batch", text)


def regimes_grid(i: Inputs) -> Grid:
    """Bytes per parameter and in total for each precision and optimizer."""
    P = parameter_count(i.shape)
    rows = []
    for rk, label, dtype, optimizer in REGIMES:
        t = {r.key: r for r in fixed_table(i.shape, i.setup.replace(dtype=dtype, optimizer=optimizer, checkpoint="none")).rows}
        copies = t["weight-copies"].bytes if "weight-copies" in t else 0
        total = sum(r.bytes for r in t.values())
        rows.append((rk, [label, ratio(Fraction(total, P)), in_unit(total, i.unit), str(t["parameters"].bytes_per_value),
                          str(t["gradients"].bytes_per_value), str(t["optimizer"].bytes_per_value),
                          ratio(Fraction(copies, P))]))
    # the totals come second, where a phone shows them; the parts that add up to them follow
    return grid("regimes", "Bytes per parameter by regime", ["Regime", "Total per parameter", "Total", "Parameters",
                "Gradients", "Optimizer state", "bf16 copies (per parameter, averaged)"], rows)


def savings_grid(i: Inputs) -> Grid:
    """Before and after each saving, under the autograd accounting, at the inputs' batch."""
    rows = []
    base = None
    for rk, label, setup in option_setups(i):
        kept = activation_table(i.shape, setup).bytes_for_batch()
        base = base or kept
        rows.append((rk, [label, in_unit(kept, i.unit), f"{float(Fraction(kept, base)):.1%}",
                          in_unit(peak_bytes(i.shape, setup), i.unit), grouped(largest_batch(i.shape, setup, i.budget))]))
    return grid("options", f"Savings, batch of {i.setup.batch:,}", ["Setup", "Activations kept", "Of the baseline",
                "Peak of the step", f"Largest batch in {budget_text(i)}"], rows)


def accountings_grid(i: Inputs) -> Grid:
    """Every accounting and option set: activations per sequence (GB and GiB), largest batch."""
    claim = int(Fraction(SEED_PRINTED["claim_gb"]) * 10**9)
    setups = [(f"{a}-{dtype}", f"{a}, {dtype}", i.setup.replace(accounting=a, dtype=dtype, attention="explicit",
                                                                  checkpoint="none", batch=1))
              for a in ("seed", "cs336") for dtype in ("fp32", "bf16")]
    setups += [(f"autograd-{rk}", f"autograd, {label}", setup.replace(batch=1)) for rk, label, setup in option_setups(i)]
    rows = []
    for rk, label, setup in (s for s in setups if supported(i.shape, s[2])):
        kept = activation_table(i.shape, setup).bytes_for_batch(1)
        rows.append((rk, [label, in_unit(kept, "GB"), in_unit(kept, "GiB"), f"{float(Fraction(kept, claim)):.2f}×",
                          grouped(largest_batch(i.shape, setup, i.budget))]))
    return grid("accountings", "Activations per sequence under each accounting", ["Accounting and options",
                "Per sequence (GB)", "Per sequence (GiB)", "Against 2.265 GB", f"Largest batch in {budget_text(i)}"], rows)


def _context_point(i: Inputs, context: int) -> tuple:
    """(explicit total, flash total, quadratic part of explicit, the rest) per sequence, in
    bytes, at `context` tokens (autograd accounting); flash is None where the reader's
    implementation has no flash attention."""
    # a learned position table grows with the context swept (it holds parameters, not activations)
    shape = i.shape.replace(context=context, max_positions=max(context, i.shape.max_positions))
    setup = i.setup.replace(accounting="autograd", batch=1)
    explicit = activation_table(shape, setup.replace(attention="explicit"))
    total, quadratic = explicit.bytes_for_batch(1), quadratic_bytes(explicit)
    flash_setup = setup.replace(attention="flash")
    flash = activation_table(shape, flash_setup).bytes_for_batch(1) if supported(shape, flash_setup) else None
    return total, flash, quadratic, total - quadratic


def quadratic_grid(i: Inputs) -> Grid:
    """Per sequence, against context length: what grows with s² against the rest, and
    explicit against flash attention."""
    rows = []
    for s in sorted(set(QUADRATIC_CONTEXTS) | {i.shape.context}):
        total, flash, quadratic, rest = _context_point(i, s)
        rows.append((f"s-{s}", [grouped(s), in_unit(quadratic, i.unit), in_unit(rest, i.unit),
                                f"{float(Fraction(quadratic, total)):.0%}", in_unit(total, i.unit),
                                "—" if flash is None else in_unit(flash, i.unit)]))
    return grid("quadratic", "Activations per sequence against context length", ["Context s",
                "Softmax output and mask (∝ s²)", "Everything else (∝ s)", "Quadratic share", "Explicit attention",
                "Flash attention"], rows)


def output_layer_grid(i: Inputs) -> Grid:
    """What the output layer keeps, against one block, per sequence."""
    table = activation_table(i.shape, i.setup.replace(accounting="autograd", batch=1))
    head = sum(r.bytes_for_batch(1) for r in table.rows if r.stage == "head")
    wide = [r for r in table.rows if r.stage == "head" and any("V" in term for term in r.formula.terms)]
    logprobs = sum(r.bytes for r in wide)
    block = bytes_per_block(i.shape, table)
    names = " and ".join(r.name.split(",")[0].split(" (")[0].lower() for r in wide)
    return grid("output-layer", "The output layer against one block (one sequence)", ["What", "Kept", "In blocks' worth"], [
        ("log-probs", [f"Tensors of s·V values: {names}", in_unit(logprobs, i.unit),
                       f"{float(Fraction(logprobs, block)):.2f}"]),
        ("head", ["Everything the final norm, head and loss keep", in_unit(head, i.unit), f"{float(Fraction(head, block)):.2f}"]),
        ("block", ["One transformer block", in_unit(block, i.unit), "1"]),
    ])


def seed_checks_grid(i: Inputs) -> Grid:
    """The seed's printed figures beside the exact ones."""
    seed = activation_table(i.shape, i.setup.replace(accounting="seed", dtype="fp32", batch=1))
    total = seed.total_bytes
    per_position = Fraction(SEED_PRINTED["claim_gb"]) * 10**9 / (i.shape.context * 4)
    return grid("seed-checks", "The seed's figures, checked", ["Figure", "The seed prints", "Exactly"], [
        ("total-values", ["Values in all", grouped(SEED_PRINTED["total_values"]), grouped(seed.total_count)]),
        ("total-bytes", ["Bytes in all (4 bytes a value)", grouped(SEED_PRINTED["total_bytes"]), grouped(total)]),
        ("total-unit", ["The same bytes, with a unit", SEED_PRINTED["total_as_printed"],
                        f"{in_unit(total, 'GiB', 2)} = {in_unit(total, 'GB', 2)}"]),
        ("per-position", [f"2.265 GB ÷ ({i.shape.context:,} × 4 bytes), values per position",
                          grouped(SEED_PRINTED["values_per_position"]), f"{float(per_position):,.1f}"]),
    ])


_RESULTS_DEVICES = {"cpu": ("cpu", "validation", "on the CPU"),
                    "cuda-derived": ("cuda", "validation-cuda-derived", "under CUDA's rules, derived on fake tensors"),
                    "cuda": ("cuda", "validation-cuda", "measured on")}
"""A results file's device: the device calc's rows are for, the grid's key, and how the
file's cases were found."""


def validation_grid(results: dict) -> Grid:
    """Each committed PyTorch measurement (or CUDA derivation) beside calc's prediction for
    the same setup, on the card each case names; a case CUDA's rules leave underived shows
    calc's refusal."""
    device, key, how = _RESULTS_DEVICES[results.get("device", "cpu")]
    if results.get("device") == "cuda":
        how = f"{how} an {results.get('gpu', 'unnamed GPU').removeprefix('NVIDIA ')}"
    rows = []
    for c in results.get("cases", []):
        shape = ModelShape(**c["shape"])
        arch = c.get("arch", TrainingSetup.arch)
        setup = TrainingSetup(batch=c["batch"], attention=c["attention"], checkpoint=c["checkpoint"], dtype=c["dtype"],
                              device=device, arch=arch)
        options = _measured_options(shape)
        rk = "-".join([c["name"], f"b{c['batch']}", c["attention"], c["checkpoint"], c["dtype"], *options.split(", "),
                       *([arch] if device == "cuda" else [])])
        if "not_derived" in c:
            figures = ["—", "not derived", "refused"]
        else:
            predicted = activation_table(shape, setup).bytes_for_batch()
            figures = [grouped(predicted - c["activations"]), grouped(c["activations"]), grouped(predicted)]
        cells = [c["name"], *figures, shape.implementation, options or "—", str(c["batch"]), c["attention"],
                 c["checkpoint"], c["dtype"], arch if device == "cuda" else str(c["tensors"])]
        rows.append((rk.replace(" ", "").replace("=", "-"), cells))
    versions = f"PyTorch {results.get('torch', '?')}, transformers {results.get('transformers', '?')}"
    tensors = {"cuda": ", real tensors", "cuda-derived": ", fake tensors"}.get(results.get("device", "cpu"), "")
    return grid(key, f"Saved for backward: {versions} {how}{tensors}, against calc, in bytes",
                ["Shape", "calc − measured", "Measured", "calc", "Code", "Options", "B", "Attention", "Checkpoint",
                 "dtype", "Card" if device == "cuda" else "Tensors"], rows, numeric_from=1, numeric_to=4)


def distributed_grid(results: dict, name: str = "validation-distributed") -> Grid:
    """Each step measured rank by rank on CPU processes beside calc's peak for that rank
    (framework, layout and setup as measured): the highest phase of every rank. `name`
    is the view's (DDP's record or FSDP2's)."""
    shapes = {name: ModelShape(**cfg) for name, cfg in results.get("shapes", {}).items()}
    rows = []
    for c in results.get("steps", []):
        fsdp2 = c["framework"] == "fsdp2"
        setup = TrainingSetup(batch=c["batch"], dtype=c["dtype"], attention=c["attention"], checkpoint=c["checkpoint"],
                              device="cpu", optimizer_impl="fused", dp=c["ranks"], framework=c["framework"],
                              ddp_bucket_view=c.get("bucket_view", False),
                              zero=(3 if c.get("reshard") else 2) if fsdp2 else 0,
                              microbatches=c.get("microbatches", 1))
        ours = peak_bytes(shapes[c["shape"]], setup)
        measured = [max(phases.values()) for phases in c["phases"]]
        if fsdp2:
            options, variant = ("reshard after forward", "reshard") if c["reshard"] else ("kept to backward", "kept")
        else:
            options, variant = ("gradient_as_bucket_view", "view") if c["bucket_view"] else ("bucket copy", "copy")
        microbatches = c.get("microbatches", 1)
        key = "-".join([c["framework"], c["shape"], f"b{c['batch']}", c["dtype"], c["attention"], c["checkpoint"],
                        variant, *([f"m{microbatches}"] if microbatches > 1 else [])])
        batch = f"{microbatches} × {c['batch']}" if microbatches > 1 else str(c["batch"])
        rows.append((key, [c["shape"], grouped(max(ours - m for m in measured)), grouped(max(measured)),
                           grouped(ours), f"{c['framework']}, {options}", f"{c['ranks']} ranks", batch,
                           c["attention"], c["checkpoint"], c["dtype"]]))
    return grid(name, f"Steps on {results.get('backend', '?')} CPU processes, PyTorch "
                                           f"{results.get('torch', '?')}, rank by rank, against calc: peak bytes",
                ["Shape", "calc − measured", "Measured", "calc", "Framework", "Layout", "B", "Attention",
                 "Checkpoint", "dtype"], rows, numeric_from=1, numeric_to=4,
                notes=("Each rank's peak; every phase of every rank equals calc's moment to the byte "
                       "(tests/engine/test_distributed.py).",
                       "B is the sequences a micro-batch on each rank; 2 × 3 is two micro-batches of 3 a step, "
                       "the gradients accumulated (FSDP2 reduce-scatters each into the shards)."))


def tensor_parallel_grid(results: dict) -> Grid:
    """Each step measured on tensor-parallel CPU processes (DTensor) beside calc for that
    rank: what autograd saved in the forward pass, and the step's peak."""
    shapes = {name: ModelShape(**cfg) for name, cfg in results.get("shapes", {}).items()}
    rows = []
    for c in results.get("steps", []):
        setup = TrainingSetup(batch=c["batch"], dtype=c["dtype"], attention=c["attention"], checkpoint=c["checkpoint"],
                              device="cpu", optimizer_impl="fused", tp=c["tp"], sp=c["sp"], framework=c["framework"])
        shape = shapes[c["shape"]]
        saved, peak = stages(shape, setup)[0].activations, peak_bytes(shape, setup)
        measured_saved = max(rank["saved"] for rank in c["phases"])
        measured_peak = max(max(v for k, v in rank.items() if k != "saved") for rank in c["phases"])
        key = "-".join(["tp", c["shape"], f"b{c['batch']}", c["dtype"], c["attention"], c["checkpoint"],
                        "sp" if c["sp"] else "nosp"])
        rows.append((key, [c["shape"], "yes" if c["sp"] else "no", grouped(saved - measured_saved),
                           grouped(measured_saved), grouped(peak - measured_peak), grouped(measured_peak),
                           grouped(peak), f"{c['tp']} ranks", str(c["batch"]), c["attention"], c["checkpoint"],
                           c["dtype"]]))
    return grid("validation-tp", f"Tensor parallelism on {results.get('backend', '?')} CPU processes (DTensor, "
                                 f"torchtitan's plan), PyTorch {results.get('torch', '?')}, rank by rank, against "
                                 "calc: bytes",
                ["Shape", "Sequence parallel", "Saved: calc − measured", "Saved, measured", "Peak: calc − measured",
                 "Peak, measured", "Peak, calc", "Layout", "B", "Attention", "Checkpoint", "dtype"], rows,
                numeric_from=2, numeric_to=7,
                notes=("Saved: what autograd kept in the forward pass on each rank. Peak: the step's highest "
                       "phase; every phase of every rank equals calc's moment to the byte "
                       "(tests/engine/test_distributed.py).",))


def pipeline_grid(results: dict, name: str = "validation-pp") -> Grid:
    """Each step measured on pipeline-parallel CPU processes (torch.distributed.pipelining,
    one stage a rank; or, `name` "validation-fsdp2-pp", each stage sharded by FSDP2 over
    replicas) beside calc for that rank: its highest pass and the step's peak."""
    shapes = {name: ModelShape(**cfg) for name, cfg in results.get("shapes", {}).items()}
    rows = []
    for c in results.get("steps", []):
        replicas = c["ranks"] // c["pp"]
        sharded = {"dp": replicas, "zero": 3 if c["reshard"] else 2} if replicas > 1 else {}
        setup = TrainingSetup(batch=c["batch"], dtype=c["dtype"], attention=c["attention"], checkpoint=c["checkpoint"],
                              device="cpu", optimizer_impl="fused", pp=c["pp"], microbatches=c["microbatches"],
                              schedule=c["schedule"], framework=c["framework"], **sharded)
        shape = shapes[c["shape"]]
        resharding = ([] if not sharded else ["reshard" if c["reshard"] else "kept"])
        for rank, measured in enumerate(c["phases"]):
            stage, replica = divmod(rank, replicas)
            ours = pass_bytes(shape, setup, stage)
            key = "-".join(["pp", c["shape"], f"b{c['batch']}", f"m{c['microbatches']}", c["schedule"], c["dtype"],
                            c["attention"], c["checkpoint"], *resharding, f"rank{rank}"])
            differing = sum(ours.get(phase) != value for phase, value in measured.items())
            where = f"stage {stage + 1}" + (f", shard {replica + 1}" if sharded else "")
            rows.append((key, [c["shape"], SCHEDULES[c["schedule"]] + (f", {resharding[0]}" if sharded else ""),
                               str(c["microbatches"]), where,
                               grouped(max(ours.values()) - max(measured.values())), grouped(max(measured.values())),
                               grouped(max(ours.values())), f"{len(measured) - differing} of {len(measured)}",
                               str(c["batch"]), c["attention"], c["checkpoint"], c["dtype"]]))
    what = ("FSDP2 inside pipelines: each stage sharded over two ranks" if name == "validation-fsdp2-pp"
            else "torch.distributed.pipelining, one stage a rank")
    notes = ("Each pass is one micro-batch's forward (with its loss, on the last stage) or backward, and the "
             "optimizer step; calc walks the stage's moments at every pass of its schedule "
             "(tests/engine/test_distributed.py).",)
    if name == "validation-fsdp2-pp":
        notes += ("With FSDP2 the passes also include the reduce-scatter once every micro-batch is done. Reshard: "
                  "reshard_after_forward=True (zero 3); kept: False (zero 2), which torchtitan sets with pipelines.",)
    return grid(name, f"Pipelines on {results.get('backend', '?')} CPU processes ({what}), PyTorch "
                      f"{results.get('torch', '?')}, rank by rank, against calc: bytes",
                ["Shape", "Schedule", "Micro-batches", "Rank", "Peak: calc − measured", "Peak, measured", "Peak, calc",
                 "Passes equal", "B", "Attention", "Checkpoint", "dtype"], rows,
                numeric_from=4, numeric_to=7, notes=notes)


def _measured_options(shape: ModelShape) -> str:
    """The implementation's settings a measurement varied: a from-scratch model's way of
    writing softmax, loss and pick; Hugging Face's dropout and cache."""
    if shape.implementation == "scratch":
        return f"{shape.softmax}, {shape.cross_entropy}, {shape.pick}"
    if shape.implementation == "hf":
        return f"dropout={shape.dropout:g}" + (", use_cache" if shape.use_cache else "")
    return ""


def glossary_grid(i: Inputs) -> Grid:
    values = symbol_values(i.shape)
    rows = [(name, [plain, meaning, grouped(values[name]) if name in values else "—"])
            for name, (plain, _, meaning) in SYMBOLS.items()]
    return grid("glossary", "Symbols", ["Symbol", "Meaning", "For this model"], rows, 2)


def block_formula(i: Inputs):
    """The values one block keeps per sequence, as one Formula (the autograd rows summed).
    FieldError where the blocks do not all keep the same (LoRA's first, frozen ones)."""
    setup = i.setup.replace(accounting="autograd", checkpoint="none")
    formulas = [r.formula for r in block_rows(i.shape, setup) if not r.per_step]
    if any("L" not in term for formula in formulas for term in formula.terms):
        field = "finetune" if setup.finetune != "full" else "frozen_blocks" if setup.frozen_blocks else "freeze_embeddings"
        raise FieldError(field, "one formula for every block needs blocks that all keep the same; here some keep less "
                                "(the activations table gives each its own row)")
    return combine(formulas, drop="L")


def setup_label(setup: TrainingSetup) -> str:
    return (f"{setup.accounting}, {setup.dtype}, {setup.attention} attention, checkpoint {setup.checkpoint}, "
            f"{setup.optimizer}, B = {setup.batch:,}, {setup.device_name}")


def compare_grid(i: Inputs) -> Grid:
    """Setup A and setup B side by side, row by row, with B's ratio to A."""
    a, b = i.setup, i.compare
    sa, sb = summary(i.shape, a, i.budget), summary(i.shape, b, i.budget)
    rows = []
    for rk, label in (("parameters", "Parameters"), ("gradients", "Gradients"), ("optimizer", "Optimizer state"),
                      ("weight_copies", "bf16 weight copies"), ("activations", "Activations kept (the batch)"),
                      ("activations_per_sequence", "Activations kept, one sequence"), ("peak", "Peak of the step")):
        x, y = sa["bytes"][rk], sb["bytes"][rk]
        rows.append((rk.replace("_", "-"), [label, in_unit(x, i.unit), in_unit(y, i.unit), _times(y, x)]))
    x, y = sa["largest_batch"], sb["largest_batch"]
    rows.append(("largest-batch", [f"Largest batch in {budget_text(i)}", grouped(x), grouped(y), _times(y, x)]))
    return grid("compare", f"A: {setup_label(a)}. B: {setup_label(b)}.", ["Quantity", "Setup A", "Setup B", "B / A"], rows)


def finetune_setups(i: Inputs) -> tuple:
    """(key, label, setup) of full fine-tuning, LoRA and QLoRA for the reader's model and
    step (finetune_grid says how each is chosen)."""
    nothing_frozen = dict(freeze_embeddings=False, frozen_blocks=0)  # LoRA freezes the whole base itself
    adapters = i.setup if trains_adapters(i.setup) else i.setup.replace(finetune="lora", **nothing_frozen)
    lora = adapters.replace(finetune="lora", prepare_kbit=False)
    qlora = adapters.replace(finetune="qlora", dtype="bf16-master")
    full = (i.setup if not trains_adapters(i.setup) else  # the reader's own full fine-tuning, frozen layers and all
            lora.replace(finetune="full", dtype="bf16" if lora.dtype == "bf16-master" else lora.dtype))
    eight_bit = full.optimizer in EIGHT_BIT_OPTIMIZERS  # bitsandbytes' 8-bit AdamW: no master copy to step
    full = full.replace(optimizer="adamw") if eight_bit and full.dtype == "bf16-master" else full
    optimizer = (f", {dict(BY_NAME['optimizer'].choices)[full.optimizer]}" if full.optimizer in EIGHT_BIT_OPTIMIZERS
                 else ", AdamW" if eight_bit else "")
    frozen = (f", {full.frozen_blocks:,} layers and the embedding frozen" if full.frozen_blocks
              else ", the embedding frozen" if full.freeze_embeddings else "")
    return (("full", f"Full fine-tuning ({full.dtype}{optimizer}{frozen})", full),
            ("lora", f"LoRA ({lora.dtype})", lora), ("qlora", f"QLoRA ({quant_label(qlora)} base)", qlora))


def _modelled(i: Inputs, setups) -> list:
    """The setups calc models for the inputs' model, each as (key, label, setup) or None."""
    return [None if _refusal(i, entry[2]) else entry for entry in setups]


def _refusal(i: Inputs, setup) -> str:
    """Why calc does not model this setup for the inputs' model ("" where it does)."""
    try:
        check_setup(i.shape, setup)
    except FieldError as error:
        return error.message
    return ""


def finetune_grid(i: Inputs) -> Grid:
    """Full fine-tuning beside LoRA and QLoRA for the reader's model, step and card: the
    states each holds, the activations, the peak, the largest batch, and the fewest GPUs
    for the reader's batch. Full fine-tuning of Hugging Face code runs under bf16 autocast
    where the reader's LoRA has a bf16 base (a bf16 cast of the whole model is measured for
    the reference implementation only); QLoRA over the bf16 base, its linear layers in 4 bits
    (or 8: quant_type int8)."""
    setups = finetune_setups(i)
    lora, qlora = setups[1][2], setups[2][2]
    columns = []
    for entry in _modelled(i, setups):
        if entry is None:
            columns.append(None)
            continue
        found = search(i.shape, entry[2], i.budget, i.question).layouts
        columns.append((summary(i.shape, entry[2], i.budget), found[0].gpus if found else None))
    rows = []
    for rk, label in (("parameters", "Weights (LoRA: the frozen base and the adapters)"),
                      ("gradients", "Gradients"), ("optimizer", "Optimizer state"), ("weight_copies", "bf16 weight copies"),
                      ("activations", f"Activations kept (B = {lora.batch:,})"), ("peak", "Peak of the step")):
        rows.append((rk.replace("_", "-"), [label, *(in_unit(c[0]["bytes"][rk], i.unit) if c else "—" for c in columns)]))
    rows.append(("largest-batch", [f"Largest batch in {budget_text(i)}",
                                   *(grouped(c[0]["largest_batch"]) if c else "—" for c in columns)]))
    sequences = i.question.sequences or lora.global_batch
    rows.append(("fewest-gpus", [f"Fewest GPUs for {sequences:,} sequences a step",
                                 *((grouped(c[1]) if c[1] else "none within the solver's bounds") if c else "—"
                                   for c in columns)]))
    return grid("finetune", f"Full fine-tuning, LoRA and QLoRA (rank {lora.lora_rank}, {lora.lora_targets}) at "
                            f"{i.shape.context:,} tokens",
                ["Quantity", *(label for _, label, _ in setups)],
                rows,
                notes=("Full fine-tuning of Hugging Face code under bf16 autocast where the LoRA base is bf16 (calc "
                       "measures a bf16 cast of the whole model for the reference implementation only). QLoRA: the "
                       f"bf16 base with its blocks' linear layers in bitsandbytes' {quant_label(qlora)}"
                       + ("" if qlora.quant_type == "int8" else ", double quantisation" if qlora.double_quant
                          else ", fp32 scales") + ". The "
                       "fewest GPUs: the solver's answer for the same step and question; LoRA, QLoRA and 8-bit "
                       "AdamW run on one GPU or DDP replicas. LoRA's and QLoRA's rows are measured on the CPU; "
                       "on CUDA they are derived (CUDA's dropout masks and attention kernel), not measured on a GPU.",
                       *(f"{label}: not modelled here ({reason})" for _, label, setup in setups
                         if (reason := _refusal(i, setup)))))


def _times(y: int, x: int) -> str:
    if x:
        return f"{float(Fraction(y, x)):.3f}×"
    return "—" if not y else "new"


# The pictures' data. Each has the numbers it draws as a Grid (`numbers`), which the site
# shows under the picture and the CLI prints.

@dataclass(frozen=True)
class Bar:
    """One stacked bar: its parts (key, label, bytes), and a marker (bytes) or None."""

    key: str
    label: str
    parts: tuple
    marker: int | None = None

    @property
    def total(self) -> int:
        return sum(b for _, _, b in self.parts)


@dataclass(frozen=True)
class Bars:
    """Horizontal stacked bars against the GPU budget. Every bar has the same parts."""

    key: str
    title: str
    what: str
    bars: tuple
    marker_label: str | None
    budget: int
    unit: str

    def numbers(self) -> Grid:
        """A row per part and a column per bar (a column per part would not fit a page)."""
        rows = [(key, [label, *(in_unit(b.parts[n][2], self.unit) for b in self.bars)])
                for n, (key, label, _) in enumerate(self.bars[0].parts)]
        last = [in_unit(b.marker if b.marker is not None else b.total, self.unit) for b in self.bars]
        rows.append(("peak" if self.marker_label else "total", [self.marker_label or "Total", *last]))
        return grid(self.key + "-numbers", "The numbers in this picture", ["Part", *(b.label for b in self.bars)], rows)


def memory_parts(i: Inputs, setup: TrainingSetup) -> tuple:
    """(key, label, bytes) of fixed memory and of activations by category, for the batch;
    every part is present (0 where a setup has none), so bars line up part by part."""
    fixed = {r.key: r.bytes for r in fixed_table(i.shape, setup).rows}
    fixed["parameters"] += fixed.pop("quantized", 0) + fixed.pop("adapters", 0)  # LoRA's: the base and the adapters
    by_category = {key: 0 for key, _ in CATEGORIES}
    for r in activation_table(i.shape, setup).rows:
        by_category[r.category] += r.bytes_for_batch(setup.batch)
    return tuple((key, label, fixed.get(key, 0)) for key, label in FIXED_PARTS) + tuple(
        (key, label, by_category[key]) for key, label in CATEGORIES)


def stack_bars(i: Inputs, bars: str = "options") -> Bars:
    """Stacked bars of memory by part: the option sets (bars=options), the accountings
    (bars=accountings), full fine-tuning, LoRA and QLoRA (bars=finetune, those calc models
    for the model) or the inputs' own setup (bars=page); the marker is the peak."""
    if bars == "finetune":
        setups = [entry for entry in _modelled(i, finetune_setups(i)) if entry]
    elif bars == "accountings":
        setups = [(a, {"seed": "the seed's list", "cs336": "CS336 list", "autograd": "what autograd keeps"}[a],
                   i.setup.replace(accounting=a)) for a in ("seed", "cs336", "autograd")]
    elif bars == "page":
        setups = [("page", "these inputs", i.setup)]
    else:
        setups = option_setups(i)
    return Bars("chart-stack", "Where the memory goes", "Stacked bars of memory by part; the tick is the peak of the step.",
                tuple(Bar(rk, label, memory_parts(i, setup), peak_bytes(i.shape, setup)) for rk, label, setup in setups),
                "Peak", i.budget, i.unit)


@dataclass(frozen=True)
class Series:
    """One line: points (x, bytes); `largest` is the largest batch that fits (batch lines)."""

    key: str
    label: str
    points: tuple
    largest: int | None = None


@dataclass(frozen=True)
class BatchLines:
    """Peak memory against batch size, one line per setup, against the GPU budget."""

    series: tuple
    top_batch: int
    budget: int
    unit: str
    peaks_at_one: tuple
    peaks_at_largest: tuple

    def numbers(self) -> Grid:
        rows = [(s.key, [s.label, grouped(s.largest), in_unit(one, self.unit), in_unit(top, self.unit)])
                for s, one, top in zip(self.series, self.peaks_at_one, self.peaks_at_largest)]
        return grid("chart-batch-numbers", "The numbers in this picture",
                    ["Setup", "Largest batch", "Peak at B = 1", "Peak at the largest batch"], rows)


def batch_lines(i: Inputs) -> BatchLines:
    setups = option_setups(i, ("baseline", "bf16-flash", "checkpoint", "all"))
    fits = [largest_batch(i.shape, setup, i.budget) for _, _, setup in setups]
    top_batch = max(8, min(4096, int(max(fits) * 1.5) + 1))
    batches = sorted({1, top_batch} | {max(1, round(top_batch * k / 40)) for k in range(41)})
    series = tuple(Series(rk, label, tuple((b, peak_bytes(i.shape, setup.replace(batch=b))) for b in batches), best)
                   for (rk, label, setup), best in zip(setups, fits))
    return BatchLines(series, top_batch, i.budget, i.unit,
                      tuple(peak_bytes(i.shape, setup.replace(batch=1)) for _, _, setup in setups),
                      tuple(peak_bytes(i.shape, setup.replace(batch=max(best, 1))) for (_, _, setup), best in zip(setups, fits)))


@dataclass(frozen=True)
class ContextLines:
    """Activations per sequence against context length (log axes)."""

    series: tuple
    context: int
    unit: str

    def numbers(self) -> Grid:
        contexts = [s for s, _ in self.series[0].points]
        rows = [(f"s-{s}", [grouped(s)] + [in_unit(line.points[n][1], self.unit) for line in self.series])
                for n, s in enumerate(contexts)]
        return grid("chart-context-numbers", "The numbers in this picture",
                    ["Context s"] + [line.label for line in self.series], rows)


def context_lines(i: Inputs) -> ContextLines:
    """Explicit and flash totals, and the explicit total's quadratic part and the rest."""
    points = [(s, _context_point(i, s)) for s in CHART_CONTEXTS]
    names = (("explicit", "explicit attention"), ("flash", "flash attention"),
             ("quadratic", "softmax output and mask (∝ s²)"), ("linear", "everything else, explicit (∝ s)"))
    series = tuple(Series(key, label, tuple((s, values[n]) for s, values in points)) for n, (key, label) in enumerate(names)
                   if all(values[n] is not None for _, values in points))
    return ContextLines(series, i.shape.context, i.unit)


@dataclass(frozen=True)
class BlockTensors:
    """The tensors one block keeps for one sequence, largest first: (key, name, bytes, category)."""

    rows: tuple
    unit: str

    def numbers(self) -> Grid:
        return grid("chart-block-numbers", "The numbers in this picture", ["Tensor", "Bytes", self.unit],
                    [(rk, [name, grouped(n), in_unit(n, self.unit)]) for rk, name, n, _ in self.rows])


def block_tensors(i: Inputs) -> BlockTensors:
    setup = i.setup.replace(accounting="autograd", checkpoint="none", batch=1)
    rows = [(r.key, r.name, r.bytes if r.per_step else r.bytes // i.shape.layers, r.category)
            for r in block_rows(i.shape, setup)]
    return BlockTensors(tuple(sorted(rows, key=lambda r: -r[2])), i.unit)


def layouts(i: Inputs, vary: str) -> list[tuple[str, str, TrainingSetup]]:
    """The inputs' layout with one knob varied — "zero" (the stage), "tp" (tensor
    parallelism, with and without sequence parallelism) or "pp" (pipeline stages) — keeping
    the layouts this model can be split into."""
    s = i.setup
    if vary == "zero":
        options = [(f"zero-{z}", f"ZeRO stage {z}, dp {s.dp}", dict(zero=z)) for z in range(4)]
    elif vary == "tp":
        options = [(f"tp-{t}{'-sp' if sp else ''}", f"tp {t}" + (" + sequence parallel" if sp else ""), dict(tp=t, sp=sp))
                   for t in (1, 2, 4, 8) for sp in ((False, True) if t > 1 else (False,))]
    else:
        options = [(f"pp-{p}", f"pp {p}, {s.microbatches} micro-batches", dict(pp=p)) for p in (1, 2, 4, 8, 16)]
    valid = []
    for rk, label, changes in options:
        try:
            setup = s.replace(**changes)
            check_layout(i.shape, setup)
        except FieldError:
            continue
        valid.append((rk, label, setup))
    return valid


def gpu_bars(i: Inputs, vary: str = "zero") -> Bars:
    """Stacked bars of the fullest GPU's memory for each layout that varies one knob."""
    bars = []
    for rk, label, setup in layouts(i, vary):
        rows = {r.key: r.bytes for r in per_gpu_table(i.shape, setup).rows}
        parts = (("parameters", "Parameters", rows["parameters"]), ("gradients", "Gradients", rows["gradients"]),
                 ("optimizer", "Optimizer state", rows["optimizer"]),
                 ("weight-copies", "bf16 weight copies", rows.get("weight-copies", 0)),
                 ("activations", "Activations in flight", rows["activations"]))
        bars.append(Bar(rk, label, parts, rows["peak"]))
    return Bars("chart-gpu", "Memory per GPU", "Stacked bars of the fullest GPU's memory for each layout; the tick is "
                "the peak of its step.", tuple(bars), "Peak", i.budget, i.unit)


def _stage_name(setup: TrainingSetup) -> str:
    """ZeRO-3, or FSDP2's name for its stage where FSDP2 runs the layout."""
    if setup.framework == "fsdp2":
        return "FSDP2, resharding after forward" if setup.zero == 3 else "FSDP2, gathered until backward"
    return f"ZeRO-{setup.zero}"


def _layout_text(layout: Layout, stage: bool = True) -> str:
    """dp 2 (ZeRO-3) × tp 2 with sequence parallelism, 4 micro-batches of 1 sequence"""
    s = layout.setup
    sharded = stage and s.dp * s.cp > 1 and s.zero  # ZeRO shards over the data- and context-parallel ranks
    parts = [f"dp {s.dp}" + (f" ({_stage_name(s)})" if sharded and s.dp > 1 else "")]
    if s.tp > 1:
        parts.append(f"tp {s.tp}" + (" with sequence parallelism" if s.sp else ""))
    if s.pp > 1:
        parts.append(f"pp {s.pp}" + (f" interleaved in {s.virtual_stages} chunks" if s.virtual_stages > 1 else ""))
    if s.cp > 1:
        parts.append(f"cp {s.cp}" + (f" ({_stage_name(s)})" if sharded and s.dp == 1 else ""))
    return (" × ".join(parts) + f", {s.microbatches:,} micro-batch{'es' if s.microbatches != 1 else ''} of "
            f"{s.batch:,} sequence{'s' if s.batch != 1 else ''}")


def _gpus_text(i: Inputs, gpus: int) -> str:
    card = GPUS[i.gpu].name if i.gpu != "custom" else f"GPUs of {in_unit(i.budget, i.unit, trim=True)}"
    return f"{gpus:,} × {card}" if i.gpu != "custom" else f"{gpus:,} {card}" if gpus != 1 else f"1 GPU of {in_unit(i.budget, i.unit, trim=True)}"


def _share(fraction: Fraction) -> str:
    return f"{fraction.numerator}/{fraction.denominator}"


def _cost_text(layout: Layout, unit: str) -> str:
    """What the layout costs to run (calc.layout.costs), as a clause."""
    sent = (f"each GPU sends {in_unit(layout.sent, unit)} a step (the collectives' textbook volume)" if layout.sent
            else "no communication")
    idle = f", and its pipeline idles {_share(layout.bubble)} of the step" if layout.bubble else ""
    return sent + idle


def _why_not(layout: Layout, best: Layout, unit: str) -> str:
    """Why `layout` is not the answer `best`, by the first of the solver's keys it loses on."""
    if layout.gpus > best.gpus:
        more = layout.gpus - best.gpus
        return f"needs {more:,} more GPU{'s' if more > 1 else ''}"
    if layout.bubble > best.bubble:
        return f"idles {_share(layout.bubble)} of the step in its pipeline"
    if layout.sent > best.sent:
        return f"sends {in_unit(layout.sent, unit)} a step per GPU against {in_unit(best.sent, unit)}"
    if layout.setup.microbatches > best.setup.microbatches:
        return f"takes {layout.setup.microbatches - best.setup.microbatches:,} more micro-batches"
    return "needs more memory per GPU"


def _layout_params(layout: Layout) -> tuple:
    return tuple(sorted((name, str(getattr(layout.setup, name)).lower())
                        for name in ("dp", "zero", "tp", "sp", "pp", "cp", "virtual_stages", "microbatches", "batch")))


def peak_label(shape, setup) -> str:
    """How the step's peak is known, where it is not a measured walk: "" for a walk whose
    rows are measured, else a few words for the verdict (derived, a bound, a textbook list)."""
    if setup.accounting != "autograd":
        return "counted by the textbook accounting, not measured"
    if setup.parallel and framework_of(setup) in ("deepspeed", "megatron"):
        return f"derived from {FRAMEWORKS[framework_of(setup)]}'s source, not measured"
    if setup.device == "cuda" and (setup.finetune != "full" or setup.optimizer in EIGHT_BIT_OPTIMIZERS):
        return "derived for CUDA from measurements on the CPU"  # peft's and bitsandbytes' steps: measured on CPUs
    if setup.device == "cuda" and setup.arch != MEASURED_ARCH:
        return "derived for this card, not measured on it"
    if not walks_apply(shape, setup):
        return "an upper bound: its backward is stated, not walked"
    return ""


def verdict(i: Inputs) -> tuple[Sentence, Sentence, Sentence]:
    """The reader's answer at a glance (the card under every live page's title), short
    enough for a phone: whether the step fits the memory a GPU may use, by how much; the
    largest batch that fits; the fewest GPUs for the reader's sequences a step under the
    reader's framework (the solver's answer, which the ZeRO page gives at length). The same
    figures as the summary and the solver."""
    peak = peak_bytes(i.shape, i.setup)
    usable = in_unit(i.budget, i.unit)
    card = f" on {GPUS[i.gpu].article} {GPUS[i.gpu].name}" if i.gpu != "custom" else ""
    each = " a GPU" if i.setup.gpus > 1 else ""
    label = peak_label(i.shape, i.setup)
    known = f" ({label})" if label else ""
    if peak <= i.budget:
        fit = (f"Fits: peak {in_unit(peak, i.unit)}{each}{known} of {usable} usable{card}, "
               f"{in_unit(i.budget - peak, i.unit)} spare.")
    else:
        fit = (f"Does not fit: peak {in_unit(peak, i.unit)}{each}{known}, {in_unit(peak - i.budget, i.unit)} over "
               f"{usable} usable{card}.")
    most = largest_batch(i.shape, i.setup, i.budget)
    batch = (f"Largest batch: {most:,} sequence{'s' if most != 1 else ''} of {i.shape.context:,} tokens."
             if most else f"Largest batch: none of {i.shape.context:,} tokens.")
    found = search(i.shape, i.setup, i.budget, i.question)
    sequences = i.question.sequences or i.setup.global_batch
    under = f" with {FRAMEWORKS[i.setup.framework]}" if i.setup.framework != "auto" else ""
    asked = f"{sequences:,} sequence{'s' if sequences != 1 else ''} a step{under}"
    if found.layouts:
        best = found.layouts[0]
        gpus = f"Fewest GPUs for {asked}: {_gpus_text(i, best.gpus)} ({_layout_text(best)})."
    else:
        gpus = f"Fewest GPUs for {asked}: no layout calc searches fits."
    return Sentence("fit", fit), Sentence("batch", batch), Sentence("gpus", gpus)


def solver_answer(i: Inputs) -> tuple:
    """The reader's question answered in one sentence, and the runner-up layouts with why
    each is not the answer. Each names its layout's inputs (links carry every other input
    as the reader set it)."""
    found = search(i.shape, i.setup, i.budget, i.question)
    layouts = found.layouts
    stopped = "" if found.complete else (f" The search stopped after {MAX_EVALUATIONS:,} layouts: a layout it did "
                                         "not reach may need fewer GPUs.")
    sequences = i.question.sequences or i.setup.global_batch
    tokens = sequences * i.shape.context
    if not layouts:
        limits = [f"up to {SOLVER_MAX_TP if i.question.allow_tp else 1}-way tensor parallelism",
                  f"{SOLVER_MAX_PP if i.question.allow_pp else 1} pipeline stages"]
        if i.question.stage != "any":
            limits.append(f"ZeRO stage {i.question.stage}")
        if i.question.max_microbatches:
            limits.append(f"at most {i.question.max_microbatches:,} micro-batches")
        cap = i.question.max_microbatches or MAX_PARALLEL
        smallest = min(sequences // dp // max(quotient_divisors(sequences, dp, cap)) for dp in divisors(sequences, MAX_PARALLEL))
        why = (f" Every split of them into at most {MAX_PARALLEL:,} replicas and {min(cap, MAX_PARALLEL):,} "
               f"micro-batches leaves micro-batches of {smallest:,} sequences or more, over calc's largest batch "
               f"({MAX_BATCH:,})." if smallest > MAX_BATCH else "")
        return (Sentence("answer", f"No layout with {', '.join(limits)} fits {sequences:,} sequences "
                                   f"({tokens:,} tokens) a step in {budget_text(i)} per GPU.{why}{stopped}"),)
    best = layouts[0]
    replicas = best.setup.dp * best.setup.cp
    stage = (f" with {_stage_name(best.setup)}" if replicas > 1 and best.setup.zero
             else f" (ZeRO-{best.setup.zero} shards nothing over one replica)" if best.setup.zero else "")
    text = (f"{sequences:,} sequences of {i.shape.context:,} tokens a step fit on {_gpus_text(i, best.gpus)}{stage}: "
            f"{_layout_text(best, stage=False)}; peak {in_unit(best.peak, i.unit)} of {in_unit(i.budget, i.unit)} usable "
            f"per GPU; {_cost_text(best, i.unit)}.{stopped}")
    if len(layouts) > 1:
        text += f" The next best, {_layout_text(layouts[1])}, {_why_not(layouts[1], best, i.unit)}."
    rows = []
    for layout in layouts[1:8]:
        rows.append(("-".join(f"{k}{v}" for k, v in _layout_params(layout)),
                     [_layout_text(layout), grouped(layout.gpus), str(layout.setup.zero), in_unit(layout.peak, i.unit),
                      _why_not(layout, best, i.unit)], dict(_layout_params(layout))))
    answer = Sentence("answer", text, _layout_params(best))
    if not rows:
        return (answer,)
    runners = grid("runner-ups", "Other layouts that fit, and why each is not the answer",
                   ["Layout", "GPUs", "ZeRO stage", "Peak per GPU", "Why not"], rows, 1,
                   notes=("Bytes sent are the collectives' textbook volumes (calc/layout/costs.py), not measured.",))
    return answer, runners


IMPLEMENTATIONS = (("reference", "Reference"), ("scratch", "From scratch"), ("hf", "Hugging Face"))


def implementations_grid(i: Inputs) -> Grid:
    """The model as each implementation runs it, per sequence on one GPU, by part of the
    model, at the inputs' precision (autograd accounting, explicit attention, nothing
    recomputed; a from-scratch model as the inputs write its softmax and loss)."""
    setup = i.setup.on_one_gpu().replace(accounting="autograd", attention="explicit", checkpoint="none", batch=1)
    shapes = []
    for key, label in IMPLEMENTATIONS:
        try:
            shape = i.shape.replace(implementation=key)
            check_setup(shape, setup)
        except FieldError:
            continue  # this architecture has no measured rows in that implementation
        shapes.append((key, label, shape))
    tables = [(key, activation_table(shape, setup)) for key, _, shape in shapes]
    rows = []
    for category, label in CATEGORIES:
        rows.append((category, [label] + [in_unit(sum(r.bytes for r in t.rows if r.category == category), i.unit)
                                          for _, t in tables]))
    rows.append(("total", ["Total per sequence"] + [in_unit(t.bytes_for_batch(1), i.unit) for _, t in tables]))
    rows.append(("largest-batch", [f"Largest batch in {budget_text(i)}"]
                 + [grouped(largest_batch(shape, setup, i.budget)) for _, _, shape in shapes]))
    return grid("implementations", f"One sequence, {setup.dtype}, explicit attention, by implementation",
                ["Part of the model"] + [label for _, label, _ in shapes], rows)


def scratch_variants_grid(i: Inputs) -> Grid | Sentence:
    """A from-scratch model, per sequence, in each way of writing its softmax, its
    cross-entropy and the target's pick, fp32 and bf16, against calc's reference model;
    a Sentence saying why where the model cannot be written from scratch."""
    setup = i.setup.replace(accounting="autograd", attention="explicit", checkpoint="none", batch=1)
    shape = i.shape.replace(implementation="scratch")
    try:
        check_setup(shape, setup)
    except FieldError as e:
        return Sentence("unsupported", f"No from-scratch figures for this model: {e.message}.")
    reference = activation_table(i.shape.replace(implementation="reference"), setup.replace(dtype="fp32")).bytes_for_batch(1)
    rows = []
    for softmax in SOFTMAXES:
        for loss in CROSS_ENTROPIES:
            for pick in PICKS:
                variant = shape.replace(softmax=softmax, cross_entropy=loss, pick=pick)
                fp32, bf16 = (activation_table(variant, setup.replace(dtype=d)).bytes_for_batch(1) for d in ("fp32", "bf16"))
                rows.append((f"{softmax}-{loss}-{pick}", [softmax, loss, pick, in_unit(fp32, i.unit), in_unit(bf16, i.unit),
                                                           f"{float(Fraction(fp32, reference)):.2f}×"],
                             {"implementation": "scratch", "softmax": softmax, "cross_entropy": loss, "pick": pick}))
    return grid("scratch-variants", "A from-scratch model, one sequence, by how softmax and cross-entropy are written",
                ["Softmax", "Cross-entropy", "Pick", "fp32", "bf16", "fp32 against the reference"], rows, numeric_from=3)
