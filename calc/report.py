"""One setup's answer in one place: fixed memory, activations, peak, largest batch."""

from __future__ import annotations

from calc.activations import activation_table
from calc.fit import largest_batch, peak_bytes
from calc.fixed import fixed_table, paged_optimizer_bytes, state_bytes
from calc.frozen import trainable_count
from calc.lora import EIGHT_BIT_OPTIMIZERS, adapter_count, trains_adapters
from calc.gpus import GPUS
from calc.layout.solver import SOLVER_MAX_CP, SOLVER_MAX_PP, SOLVER_MAX_TP
from calc.parameters import parameter_count
from calc.peak import MOMENTS, moment_ops, tensor_peak_bytes
from calc.setup import TrainingSetup
from calc.shape import IMPLEMENTATION_NAMES, ModelShape
from calc.table import Table, f, row
from calc.units import grouped, in_unit

DEFAULT_BUDGET = 80 * 10**9
"""80 GB (10^9 bytes), the seed's GPU."""


def summary(shape: ModelShape, setup: TrainingSetup, budget_bytes: int = DEFAULT_BUDGET) -> dict:
    """Every headline number for one setup, in bytes (exact integers)."""
    fixed = {r.key: r.bytes for r in fixed_table(shape, setup).rows}
    activations = activation_table(shape, setup)
    return {
        "shape": shape.as_dict(),
        "setup": setup.as_dict(),
        "parameters": parameter_count(shape),
        "bytes": {
            "parameters": fixed["parameters"] + fixed.get("quantized", 0) + fixed.get("adapters", 0),
            "gradients": fixed["gradients"],
            "optimizer": fixed["optimizer"],
            "paged_optimizer": paged_optimizer_bytes(shape, setup),
            "weight_copies": fixed.get("weight-copies", 0),
            "activations": activations.bytes_for_batch(),
            "activations_per_sequence": activations.bytes_for_batch(1),
            "peak_tensors": tensor_peak_bytes(shape, setup),
            "peak": peak_bytes(shape, setup),
        },
        "budget_bytes": budget_bytes,
        "largest_batch": largest_batch(shape, setup, budget_bytes),
    }


def _state_rows(setup: TrainingSetup, values: dict) -> list:
    weights, gradients, kept = state_bytes(setup)
    precision = "bf16" if weights == 2 else "fp32"
    trains, of_those = ("P_t", ", of the parameters that train") if setup.freezes else ("P", "")
    return [
        row(values, "parameters", f"Parameters ({precision})", f((weights, "P")), 1),
        row(values, "gradients", f"Gradients ({precision}{of_those})", f((gradients, trains)), 1),
        row(values, "optimizer", "Optimizer state (fp32" + (", master weights included" if weights == 2 else "")
            + f"{of_those})", f((kept, trains)), 1) if setup.optimizer not in EIGHT_BIT_OPTIMIZERS else
        row(values, "optimizer", f"Optimizer state (bitsandbytes' 8-bit AdamW{of_those}; counted in bytes)",
            f(("O_s",)), 1),
    ]


def _lora_state_rows(shape: ModelShape, setup: TrainingSetup, values: dict):
    """Under LoRA: the frozen base, and the adapters with their gradients and optimizer
    state (calc.fixed's rows, in bytes)."""
    rows = fixed_table(shape, setup).rows
    counts = {r.formula.terms[0][0]: r.count for r in rows}  # each row counts one symbol: P, P_a (QLoRA: P_o, Q_b)
    for r in rows:
        if r.key != "weight-copies":
            yield row(values | counts, r.key, r.name, f((r.bytes_per_value, *r.formula.terms[0])), 1)


def summary_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Headline bytes of one step: fixed memory, activations for the batch, the peak."""
    s = summary(shape, setup)
    b = s["bytes"]
    values = {"P": s["parameters"], "P_t": trainable_count(shape, setup), "A": b["activations"],
              "C": b["weight_copies"], "M": b["peak"],
              "M_t": b["peak_tensors"], "O_p": b["paged_optimizer"], "O_s": b["optimizer"]}
    rows = list(_lora_state_rows(shape, setup, values)) if trains_adapters(setup) else _state_rows(setup, values)
    if b["paged_optimizer"]:
        rows.append(row(values, "paged-optimizer", "Optimizer state in unified memory (PagedAdamW8bit's larger "
                                                   "moments)", f(("O_p",)), 1,
                        note="outside PyTorch's allocator, so not in the peak: paged to the host when the GPU runs "
                             "short (derived from bitsandbytes' source)"))
    if b["weight_copies"]:
        rows.append(row(values, "weight-copies", "bf16 weight copies", f(("C",)), 1))
    rows.append(row(values, "activations", f"Activations kept for backward (B = {setup.batch:,})", f(("A",)), 1,
                    note=(f"what autograd keeps for the {IMPLEMENTATION_NAMES[shape.implementation]} implementation, "
                          "for the batch") if setup.accounting == "autograd"
                    else f"the {setup.accounting} accounting's total for the batch"))
    sum_note = ("not the sum of the rows above: see Peak, not sum" if setup.accounting == "autograd" else
                "this accounting's peak is the sum of the rows above")
    if b["peak"] != b["peak_tensors"]:
        rows += [row(values, "peak-tensors", "Peak of the training step: the tensors' bytes", f(("M_t",)), 1,
                     note=sum_note),
                 row(values, "peak", "Peak as PyTorch's allocator counts it (max_memory_allocated)", f(("M",)), 1,
                     note="each tensor's block, and cuBLAS's workspace: see On your GPU")]
    else:
        rows.append(row(values, "peak", "Peak of the training step", f(("M",)), 1, note=sum_note))
    return Table("summary", "Memory of one training step", tuple(rows), count_label="bytes", show_total=False)


SOLVER_BOUNDS = {"max_tp": SOLVER_MAX_TP, "max_pp": SOLVER_MAX_PP, "max_cp": SOLVER_MAX_CP}


def value_text(inputs, name: str) -> str:
    """One number of the summary as text: `parameters`, `trainable` (LoRA: the adapters'
    count), `largest_batch`, `budget` (the
    memory a step may use, named), `gpu_reported` and `reserve` (the card's total, the
    reserve taken off it), `nccl` (NCCL's memory per communicator),
    `bytes.<key>` (in the inputs' unit) or `exact.<key>` (bytes, grouped), keys as in
    summary()['bytes'], or `setup.<field>` (a whole-number field of the step as the inputs
    set it, grouped: a framework's default the prose names), or `solver.max_tp`, `solver.max_pp`,
    `solver.max_cp` (the largest tensor-, pipeline- and context-parallel sizes the solver
    tries), or `at.<moment>` (the op a walked moment of the step peaks at, keys as in
    calc.peak.MOMENTS). KeyError for any other name."""
    s = summary(inputs.shape, inputs.setup, inputs.budget)
    if name == "parameters":
        return grouped(s["parameters"])
    if name == "largest_batch":
        return grouped(s["largest_batch"])
    if name == "trainable":  # the parameters that train: all, the unfrozen ones, or LoRA's adapters
        return grouped(adapter_count(inputs.shape, inputs.setup) if trains_adapters(inputs.setup)
                       else trainable_count(inputs.shape, inputs.setup))
    if name == "budget":
        return inputs.budget_label
    if name in ("gpu_reported", "reserve", "nccl"):  # the card's total, the reserve taken off, NCCL's share
        if inputs.gpu == "custom" and name != "nccl":
            return "—" if name == "gpu_reported" else in_unit(0, inputs.unit, trim=True)
        nbytes = {"gpu_reported": GPUS[inputs.gpu].nbytes if inputs.gpu in GPUS else 0, "reserve": inputs.reserve,
                  "nccl": inputs.setup.nccl}[name]
        return f"{nbytes // 2**20:,} MiB ({in_unit(nbytes, inputs.unit)})"
    kind, _, key = name.partition(".")
    if kind == "solver" and key in SOLVER_BOUNDS:
        return grouped(SOLVER_BOUNDS[key])
    if kind == "setup" and isinstance(getattr(inputs.setup, key, None), int) and not isinstance(getattr(inputs.setup, key), bool):
        return grouped(getattr(inputs.setup, key))
    if kind == "at" and key in {m.key for m in MOMENTS}:  # where a walked moment peaks
        return moment_ops(inputs.shape, inputs.setup.replace(accounting="autograd")).get(key, "—")
    if kind in ("bytes", "exact") and key in s["bytes"]:
        return in_unit(s["bytes"][key], inputs.unit) if kind == "bytes" else grouped(s["bytes"][key])
    raise KeyError(f"unknown value {name!r}")
