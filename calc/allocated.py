"""A training step's moments as PyTorch's CUDA caching allocator counts them: each tensor
alive at a moment as the block it takes (calc.allocator), plus cuBLAS's workspace. This is
the figure `torch.cuda.max_memory_allocated` reports, and PyTorch's out-of-memory message.

calc.peak adds up the exact bytes of the tensors alive at each moment, by part (parameters
and optimizer state, gradients, saved activations, weight copies, the walked temporaries,
…). Here each part is taken apart into its tensors (one per parameter tensor and state;
one per saved row and block, or as many as the row keeps, such as the three bf16 copies of
the Q/K/V input or LayerNorm's mean and 1/σ; the walks' tensors alive at their highest op)
and each tensor's rounding is added to the part. The model is worked out for one GPU on
CUDA; a parallel layout's flat buffers and shards are not modelled (calc shows tensors).
"""

from __future__ import annotations

from calc.allocator import cublas_workspace_bytes, rounding
from calc.fixed import buffer_bytes, state_bytes
from calc.layout.frameworks import gradients_into_held
from calc.layout.split import split_rows, stages
from calc.lora import EIGHT_BIT_OPTIMIZERS
from calc.parameters import parameter_tensor_count, parameter_tensor_sizes
from calc.peak import MOMENTS, _INPUT_ROWS, _parts, _walks, moment_bytes
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.walk import tensors_above_at, weight_matrices, sizes

INDEX_BYTES, STEP_COUNT_BYTES = 8, 4


def modelled(setup: TrainingSetup) -> bool:
    """Whether the allocator's view is worked out for this setup: CUDA, the autograd
    accounting, one GPU (gradient accumulation included), every parameter training (not
    yet LoRA's adapters, nor frozen layers), torch.optim's AdamW or SGD (not yet
    bitsandbytes' 8-bit state)."""
    return (setup.device == "cuda" and setup.accounting == "autograd" and setup.finetune == "full"
            and not setup.freezes and (setup.dp, setup.tp, setup.pp, setup.cp) == (1, 1, 1, 1)
            and setup.optimizer not in EIGHT_BIT_OPTIMIZERS)


def allocated_moments(shape: ModelShape, setup: TrainingSetup) -> tuple[int, ...]:
    """Each moment's allocated bytes (calc.peak.MOMENTS' order) for the setup's batch."""
    tensors = moment_bytes(shape, setup)
    extra = _roundings(shape, setup)
    workspace = cublas_workspace_bytes(setup.arch)
    out = []
    for moment, nbytes in zip(MOMENTS, tensors):
        added = sum(extra.get(term[-1], 0) * (shape.layers if len(term) > 1 else 1) for term in moment.formula)
        out.append(nbytes + added + workspace)
    return tuple(out)


def allocated_peak(shape: ModelShape, setup: TrainingSetup) -> int:
    """The step's peak as max_memory_allocated counts it (one GPU on CUDA)."""
    return max(allocated_moments(shape, setup))


def _roundings(shape: ModelShape, setup: TrainingSetup) -> dict[str, int]:
    """The allocator's rounding of each part calc.peak adds up, by its symbol, in bytes."""
    B, L, s, V = setup.batch, shape.layers, shape.context, shape.vocab
    weights, grad, kept = state_bytes(setup)
    tensors = parameter_tensor_sizes(shape)
    by_tensor = lambda nbytes_each: sum(rounding(values * nbytes_each, n) for values, n in tensors)  # noqa: E731
    states = {"adamw": 2, "sgd": 1}[setup.optimizer] + (1 if setup.dtype == "bf16-master" else 0)
    rows = [r for r in split_rows(shape, setup) if r.key not in _INPUT_ROWS[shape.implementation]]
    per_layer, once = _row_roundings(rows, B, L)
    bf16 = setup.dtype == "bf16"
    z = sizes(shape, setup, accumulating=gradients_into_held(setup))
    matrices = weight_matrices(shape, z)
    copies = sum(rounding(2 * values) for values in matrices.values()) if bf16 else 0
    head_copy = rounding(2 * V * shape.d_model) if bf16 else 0
    checkpointed = setup.checkpoint == "block"
    a = setup.bytes_per_value
    steps_on_device = setup.step_impl == "fused"
    parts = _parts(shape, setup)
    gradients = by_tensor(grad)
    optimizer = by_tensor(4) * states
    out = {
        "W": by_tensor(weights) + optimizer,
        "X": _buffer_rounding(shape) + (rounding(STEP_COUNT_BYTES, parameter_tensor_count(shape))
                                        if steps_on_device and setup.optimizer == "adamw" else 0),
        "I": rounding(B * s * INDEX_BYTES, 2 if shape.implementation != "hf" else 1),
        "A": L * per_layer["block"] + per_layer["embedding"] + per_layer["head"] + once,
        "A_f": (L - 1) * per_layer["block"] + per_layer["embedding"] + once,
        "A_e": per_layer["embedding"] + once,
        "A_z": per_layer["embedding"] + once,
        "A_b": per_layer["block"],
        "A_h": per_layer["head"],
        "C": L * copies + head_copy,
        "C_f": (L - 1) * copies,
        "C_g": (0 if checkpointed else L * copies) + head_copy,
        "C_b": 0 if checkpointed else copies,
        "K": rounding(4) + (rounding(B * s * V * a) if setup.keep_logits else 0),
        "K_l": rounding(4, 2),
        "G": gradients,
        "G_a": gradients if gradients_into_held(setup) else 0,
        "G_B": gradients * (L - 1) // L if parts["G_B"] else 0,  # the later blocks' share
        "G_h": rounding(V * shape.d_model * grad, 1 + (not shape.tied)) if parts["G_h"] else 0,
        "T_f": rounding(B * s * V * a) + (rounding(B * s * V * 4) if parts["T_f"] > B * s * V * a else 0),
        "T_o": by_tensor(4) if parts["T_o"] and setup.step_impl == "foreach" else 0,
    }
    here = stages(shape, setup)[1]
    for symbol, walk in _walks(shape, setup, here).items():
        out[symbol] = sum(rounding(nbytes) for nbytes in tensors_above_at(walk, B))
    return out


def _row_roundings(rows, batch: int, layers: int) -> tuple[dict[str, int], int]:
    """The rounding of the saved rows: per block (a block row is L tensors, or a multiple
    of L where its formula says how many a block keeps: "L·3·s·d" is three), in the
    embedding's and the head's rows, and in what is kept once a step."""
    per = {"block": 0, "embedding": 0, "head": 0}
    once = 0
    for r in rows:
        nbytes = r.bytes_for_batch(batch)
        if not nbytes:
            continue
        terms = r.formula.terms
        factor = terms[0][1] if len(terms) == 1 and len(terms[0]) > 1 and isinstance(terms[0][1], int) else 1
        if r.key == "rng-state":  # two tensors a call: the seed and the offset
            once += rounding(nbytes // layers // 2, 2 * layers)
        elif r.stage == "block" and not r.per_step:
            per["block"] += rounding(nbytes // layers // factor, factor)
        elif r.per_step:
            once += rounding(nbytes)
        else:  # the embedding's and the head's rows: one tensor each
            per[r.stage] += rounding(nbytes)
    return per, once


def _buffer_rounding(shape: ModelShape) -> int:
    """The buffers' rounding: two tables (cos and sin), one pair per layer in from-scratch code."""
    total = buffer_bytes(shape)
    if not total:
        return 0
    pairs = shape.layers if shape.implementation == "scratch" else 1
    return rounding(total // (2 * pairs), 2 * pairs)


def allocated_summary(shape: ModelShape, setup: TrainingSetup) -> dict[str, int]:
    """The peak as tensors and as allocated blocks, and cuBLAS's workspace, in bytes."""
    tensors = max(moment_bytes(shape, setup))
    return {"tensors": tensors, "allocated": allocated_peak(shape, setup),
            "workspace": cublas_workspace_bytes(setup.arch)}

