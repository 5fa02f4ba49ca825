"""Every answer the site shows, by name: what each view computes, as engine parts.

A view is a function of the reader's Inputs (and, for some, an option a page pins, such
as which bars a picture draws) returning a tuple of parts: Tables, Grids, Sentences, a
Formula, or a picture's data. The site renders the parts (calc.site.views); the CLI
prints them (`python -m calc --view NAME`), so every number on the site can be printed.
"""

from __future__ import annotations

from calc import comparisons as c
from calc.activations import activation_table
from calc.allocated import allocated_peak, modelled
from calc.command import ACTIONS, command_line
from calc.errors import InputError
from calc.fixed import fixed_table
from calc.gpu_memory import allocator_checks_grid, gpu_memory_table
from calc.inputs import Inputs
from calc.layout.per_gpu import per_gpu_table
from calc.parameters import parameter_table
from calc.peak import moments_table, parts_table
from calc.report import summary_table
from calc.reverse import reverse_answer
from calc.table import Sentence
from calc.units import in_unit

FORMULA_ACCOUNTINGS = ("seed", "cs336", "autograd")


def _moments(i: Inputs) -> tuple:
    setup = i.setup.replace(accounting="autograd")
    moments = moments_table(i.shape, setup)
    worst = max(moments.rows, key=lambda r: r.count)
    where = f", {worst.note}" if worst.note else ""
    name = worst.name[0].lower() + worst.name[1:]
    allocated = (f" As PyTorch's caching allocator counts it (its blocks and cuBLAS's workspace, derived): "
                 f"{in_unit(allocated_peak(i.shape, setup), i.unit)}." if modelled(setup) else "")
    return (moments, Sentence("worst", f"The peak of the tensors is {name}: {in_unit(worst.count, i.unit)}{where}."
                                       f"{allocated}"), parts_table(i.shape, setup))


VIEWS = {
    "summary": lambda i, o: (summary_table(i.shape, i.setup), c.largest_batch_sentence(i)),
    "parameters": lambda i, o: (parameter_table(i.shape),),
    "fixed": lambda i, o: (fixed_table(i.shape, i.setup),),
    "regimes": lambda i, o: (c.regimes_grid(i),),
    "activations": lambda i, o: (activation_table(i.shape, i.setup),),
    "moments": lambda i, o: _moments(i),
    "options": lambda i, o: (c.savings_grid(i),),
    "accountings": lambda i, o: (c.accountings_grid(i),),
    "quadratic": lambda i, o: (c.quadratic_grid(i),),
    "output-layer": lambda i, o: (c.output_layer_grid(i),),
    "seed-checks": lambda i, o: (c.seed_checks_grid(i),),
    "validation": lambda i, o: (c.validation_grid(o.get("results") or {}),),
    "validation-cuda": lambda i, o: (c.validation_grid(o.get("results") or {}),),
    "validation-cuda-derived": lambda i, o: (c.validation_grid(o.get("results") or {}),),
    "formulas": lambda i, o: tuple(activation_table(i.shape, i.setup.replace(accounting=a)) for a in FORMULA_ACCOUNTINGS),
    "glossary": lambda i, o: (c.glossary_grid(i),),
    "block-formula": lambda i, o: (c.block_formula(i),),
    "chart-stack": lambda i, o: (c.stack_bars(i, o.get("bars", "options")),),
    "chart-batch": lambda i, o: (c.batch_lines(i),),
    "chart-context": lambda i, o: (c.context_lines(i),),
    "chart-block": lambda i, o: (c.block_tensors(i),),
    "compare": lambda i, o: (c.compare_grid(i),),
    "finetune": lambda i, o: (c.finetune_grid(i),),
    "implementations": lambda i, o: (c.implementations_grid(i),),
    "scratch-variants": lambda i, o: (c.scratch_variants_grid(i),),
    "reverse": lambda i, o: reverse_answer(i),
    "per-gpu": lambda i, o: (per_gpu_table(i.shape, i.setup),),
    "chart-gpu": lambda i, o: (c.gpu_bars(i, o.get("vary", "zero")),),
    "solver": lambda i, o: c.solver_answer(i),
    "verdict": lambda i, o: c.verdict(i),
    "gpu-memory": lambda i, o: (gpu_memory_table(i),),
    "allocator-checks": lambda i, o: (allocator_checks_grid(o.get("results") or {}),),
    "validation-distributed": lambda i, o: (c.distributed_grid(o.get("results") or {}),),
    "validation-fsdp2": lambda i, o: (c.distributed_grid(o.get("results") or {}, "validation-fsdp2"),),
    "validation-tp": lambda i, o: (c.tensor_parallel_grid(o.get("results") or {}),),
    "validation-pp": lambda i, o: (c.pipeline_grid(o.get("results") or {}),),
    "validation-fsdp2-pp": lambda i, o: (c.pipeline_grid(o.get("results") or {}, "validation-fsdp2-pp"),),
    "command": lambda i, o: (Sentence("command", command_line(i, o.get("action", "summary")), code=True),),
}
OPTIONS = {"chart-stack": {"bars": ("options", "accountings", "finetune", "page")}, "chart-gpu": {"vary": ("zero", "tp", "pp")},
           "command": {"action": tuple(ACTIONS)}}
"""Options a page pins for a view (not reader inputs), with their allowed values."""
PARALLEL_VIEWS = {"per-gpu", "chart-gpu", "solver"}
"""Views that read the parallel layout: a page with one shows the layout's inputs."""
COMPARE_VIEWS = {"compare"}
"""Views that read setup B: a page with one shows setup B's inputs."""
CLAIM_VIEWS = {"reverse"}
"""Views that read the claimed figure: a page with one shows the claim's inputs."""
READS_CLAIM = CLAIM_VIEWS | {"command"}
"""Views whose output changes with the claimed figure (the terminal command carries every input)."""
SAME_AT_EVERY_BATCH = {"parameters", "fixed", "regimes", "accountings", "quadratic", "output-layer", "seed-checks",
                       "formulas", "glossary", "block-formula", "chart-batch", "chart-context", "chart-block",
                       "implementations"}
"""Views whose output does not change with the batch (per sequence, of the model's
weights and state, or drawn over every batch; tests/site/test_memo.py renders each at two
batches)."""
DEFERRED_VIEWS = {"verdict", "solver", "finetune"}
"""Views that run the solver's search (tens to hundreds of milliseconds in the browser): a
page asks for them after its other views, once typing pauses, and dims them until then."""
SOLVER_VIEWS = {"solver"}
FINETUNE_VIEWS = {"finetune"}
"""Views that compare full fine-tuning with LoRA: a page with one shows LoRA's inputs."""
GROUP_READERS = {"compare": COMPARE_VIEWS, "claim": CLAIM_VIEWS, "parallel": PARALLEL_VIEWS, "solver": SOLVER_VIEWS,
                 "buffers": PARALLEL_VIEWS, "finetune": FINETUNE_VIEWS}
"""The inputs groups a panel shows only on pages with one of these views."""
STATIC_VIEWS = {"validation", "validation-cuda", "validation-cuda-derived", "allocator-checks", "validation-distributed",
                "validation-fsdp2", "validation-tp", "validation-pp", "validation-fsdp2-pp"}
RESULTS_FILES = {"validation": "results.json", "validation-cuda": "results-cuda.json",
                 "validation-cuda-derived": "results-cuda-derived.json", "allocator-checks": "h200-step-snapshot.json",
                 "validation-distributed": "distributed.json", "validation-fsdp2": "distributed-fsdp2.json",
                 "validation-tp": "distributed-tp.json", "validation-pp": "distributed-pp.json",
                 "validation-fsdp2-pp": "distributed-fsdp2-pp.json"}
"""The file in validation/ whose cases each static view shows (passed in as options["results"])."""
"""Views of committed data rather than of the inputs: not recomputed in the browser."""


def view_options(name: str, params: dict) -> dict[str, str]:
    """The options of view `name` found in `params`; InputError for a value not allowed."""
    out = {}
    for option, allowed in OPTIONS.get(name, {}).items():
        if option in params:
            value = str(params[option])
            if value not in allowed:
                raise InputError({option: f"{option} must be one of {', '.join(allowed)}"})
            out[option] = value
    return out


def answer(name: str, inputs: Inputs, options: dict | None = None) -> tuple:
    """The parts of view `name` for `inputs`; KeyError for an unknown view."""
    return VIEWS[name](inputs, options or {})
