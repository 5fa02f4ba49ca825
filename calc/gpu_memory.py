"""What a step needs of a GPU, beyond its tensors: the caching allocator's blocks, its
cache, the CUDA context; and the allocator's rules against what an H200's snapshot showed.

The layers, from the tensors out (docs "On your GPU"):
- the tensors alive at the step's peak (calc.peak, exact);
- their blocks and cuBLAS's workspace: what `torch.cuda.max_memory_allocated` reports
  (calc.allocated), worked out for one GPU on CUDA;
- what the allocator keeps cached beyond its blocks (`max_memory_reserved` is higher by
  this; fragmentation), a stated share of the card (input `fragmentation`);
- the CUDA context, the kernels and libraries loaded outside the allocator (input
  `reserve`): `nvidia-smi` shows these with the reserved memory;
- the card's total as its driver reports it.
"""

from __future__ import annotations

from calc.allocated import allocated_summary, modelled
from calc.allocator import SMALL_SIZE, block_bytes, cublas_workspace_bytes
from calc.fields import BY_NAME
from calc.gpus import GPUS
from calc.inputs import Inputs
from calc.parameters import parameter_tensor_sizes
from calc.peak import tensor_peak_bytes
from calc.presets import PRESETS
from calc.table import Grid, Table, f, grid, row
from calc.units import grouped


def gpu_memory_table(i: Inputs) -> Table:
    """The step's peak as tensors, as allocated blocks, with the allocator's cache and the
    reserve, against the card (or the typed budget), in bytes."""
    shape, setup = i.shape, i.setup
    if modelled(setup):
        peak = allocated_summary(shape, setup)
        values = {"T": peak["tensors"], "R": peak["allocated"] - peak["tensors"] - peak["workspace"],
                  "W_s": peak["workspace"]}
    else:
        values = {"T": tensor_peak_bytes(shape, setup), "R": 0, "W_s": 0}
    values |= {"F": i.cache_headroom, "X_r": i.reserve if i.gpu != "custom" else 0,
               "N_c": GPUS[i.gpu].nbytes if i.gpu != "custom" else i.budget}
    used = values["T"] + values["R"] + values["W_s"] + values["F"] + values["X_r"]
    values["Z"] = abs(values["N_c"] - used)
    rows = [row(values, "tensors", "Tensors alive at the step's peak", f(("T",)), 1,
                note="exact: the moments' highest")]
    notes = []
    if modelled(setup):
        notes.append("The blocks follow the caching allocator's rules, derived from its source; whole steps are not "
                     "yet measured on a GPU.")
        rows += [
            row(values, "rounding", "The allocator's rounding of their blocks", f(("R",)), 1,
                note="512-byte multiples; a large tensor takes a whole 2 MiB-rounded segment unless over 1 MiB is left"),
            row(values, "workspace", "cuBLAS's workspace", f(("W_s",)), 1, note=f"on {setup.arch}"),
            row(values, "allocated", "Allocated at the peak: torch.cuda.max_memory_allocated()", f(("T",), ("R",), ("W_s",)),
                1, note="what PyTorch's out-of-memory message counts"),
        ]
    else:
        notes.append("The allocator's blocks are worked out for one GPU on CUDA; here the tensors' bytes stand for them."
                     if setup.device == "cuda" else "On the CPU no caching allocator rounds the tensors.")
    if i.gpu != "custom":
        card = GPUS[i.gpu]
        rows += [
            row(values, "cache", f"The allocator's cache beyond its blocks "
                f"({BY_NAME['fragmentation'].text(i.fragmentation)} of the card)",
                f(("F",)), 1, note="max_memory_reserved() exceeds max_memory_allocated() by this, at most: an assumption"),
            row(values, "reserve", "CUDA context, kernels and libraries outside the allocator", f(("X_r",)), 1,
                note="the reserve: an assumption; nvidia-smi shows it with the reserved memory"),
            row(values, "card", f"The {card.name}'s memory, as its driver reports it", f(("N_c",)), 1,
                note=f"{card.mib:,} MiB"),
        ]
    else:
        rows.append(row(values, "card", "The memory you gave for tensors", f(("N_c",)), 1))
    fits = values["N_c"] >= used
    rows.append(row(values, "left" if fits else "short", "Left free" if fits else "Short of fitting by", f(("Z",)), 1))
    title = f"On {i.budget_label if i.gpu == 'custom' else GPUS[i.gpu].article + ' ' + GPUS[i.gpu].name}"
    return Table("gpu-memory", title, tuple(rows), count_label="bytes", show_total=False, notes=tuple(notes))


def allocator_checks_grid(snapshot: dict) -> Grid:
    """The allocator's rules (calc.allocator) against what an H200's memory snapshot of the
    seed's model showed: the AdamW moments' blocks, a W1 weight's, cuBLAS's workspace."""
    rows = []
    seed = PRESETS["cs336-gpt2-xl"]
    moments = snapshot.get("exp_avg")
    if moments:
        sizes = parameter_tensor_sizes(seed)
        ours = sum(count * block_bytes(4 * values) for values, count in sizes)
        tensors = sum(count for _, count in sizes)
        rows.append(("exp-avg", [f"AdamW's first moments ({tensors:,} tensors, {grouped(moments['values_bytes'])} bytes "
                                 "of values)", grouped(ours - moments["block_bytes"]), grouped(moments["block_bytes"]),
                                 grouped(ours)]))
    notes = []
    w1 = snapshot.get("w1_parameter")
    if w1:
        ours = block_bytes(w1["tensor_bytes"])
        rows.append(("w1", [f"A W1 weight ({grouped(w1['tensor_bytes'])} bytes)", grouped(ours - w1["block_bytes"]),
                            grouped(w1["block_bytes"]), grouped(ours)]))
        notes.append(f"The W1 weight's block was carved from a cached free block, {grouped(ours - w1['block_bytes'])} "
                     f"bytes short of the new segment calc's rule gives it: in a steady state a block can be up to "
                     f"{SMALL_SIZE // 2**20} MiB larger or smaller than the rule's.")
    if "cublas_workspace_bytes" in snapshot:
        ours = cublas_workspace_bytes("sm90")
        rows.append(("cublas", ["cuBLAS's workspace (sm90)", grouped(ours - snapshot["cublas_workspace_bytes"]),
                                grouped(snapshot["cublas_workspace_bytes"]), grouped(ours)]))
    if "reserved_above_allocated_gb" in snapshot:
        low, high = snapshot["reserved_above_allocated_gb"]
        first, last = snapshot["batches"]
        notes.append(f"max_memory_reserved() exceeded max_memory_allocated() by {low:g} to {high:g} GB in those steps "
                     f"(batch {first} to {last}).")
    return grid("allocator-checks", "Blocks: calc's allocator rules against an H200's snapshot, in bytes",
                ["Tensors", "calc − measured", "Measured", "calc"], rows, notes=tuple(notes))

