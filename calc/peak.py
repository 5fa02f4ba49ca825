"""The peak of a training step, and the largest batch that fits a memory budget.

Under the `autograd` accounting the peak is found by walking the step's moments: the
end of the forward pass, backward through the loss and LM head, backward through the
last and the first block (the blocks in between lie on a straight line between those
two), and backward through the embedding. At each moment we add up what is alive: the
parameters and optimizer state (always), the saved tensors not yet freed, the gradients
allocated so far (gradients are set to None between steps, PyTorch's default), and the
moment's working buffers. Saved tensors are exact (measured); the working buffers are a
stated model, not a measurement:

- forward end: the logits (and under autocast their fp32 copy) while log-softmax runs;
- loss and head: the gradients of the log-probabilities and of the logits, B·s·V fp32 each;
- a block: the largest gradients alive together inside it, 2·B·h·s² (softmax, explicit
  attention) or 3·B·s·d_ff (SwiGLU; 2 for GELU) values in the compute dtype; under
  checkpointing, also the block's recomputed saved tensors and bf16 weight copies (under
  selective recomputation, the recomputed softmax output);
- embedding: the gradient of its output, B·s·d fp32.

The `seed` and `cs336` accountings have no moments: their peak is their own sum,
parameters + gradients + optimizer state + activations, as those derivations define it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from calc.activations import activation_table, bytes_per_block
from calc.fixed import OPTIMIZER_BYTES, weight_copy_count
from calc.parameters import matrix_parameter_count, parameter_count, parameter_table
from calc.setup import MAX_BATCH, TrainingSetup
from calc.shape import ModelShape
from calc.table import SYMBOLS, Table, f, row

PART_SYMBOLS = {
    "W": "parameters and optimizer state (held all step)",
    "A": "saved activations at the end of the forward pass",
    "C": "bf16 weight copies (autocast)",
    "A_e": "saved by the embedding", "A_b": "saved by one block", "A_h": "saved by the final norm, head and loss",
    "C_b": "one block's bf16 weight copies",
    "G": "all parameter gradients", "G_e": "embedding gradients", "G_b": "one block's gradients",
    "G_h": "final norm and LM head gradients (the shared matrix when tied)",
    "T_f": "logits while log-softmax runs", "T_h": "gradients of log-probabilities and logits",
    "T_b": "a block's largest gradients alive together", "R_b": "a recomputed block's saved tensors and weight copies",
    "T_e": "gradient of the embedding output",
}


@dataclass(frozen=True)
class Moment:
    key: str
    name: str
    formula: tuple  # terms for calc.table.f


def _stage_bytes(rows, stage: str, batch: int) -> int:
    return sum(r.bytes_for_batch(batch) for r in rows if r.stage == stage)


def _parts(shape: ModelShape, setup: TrainingSetup) -> dict[str, int]:
    """Byte values of the parts the moments add up, for the setup's batch."""
    B, L, s, V = setup.batch, shape.layers, shape.context, shape.vocab
    a = setup.bytes_per_value
    P = parameter_count(shape)
    params = {r.key: r.count for r in parameter_table(shape).rows}
    embedding_params = params["token-embedding"] + params.get("position-embedding", 0)
    head_params = params["final-norm"] + params.get("lm-head", 0)
    block_params = (P - embedding_params - head_params) // L
    tied_grad = shape.vocab * shape.d_model if shape.tied else 0

    saved_table = activation_table(shape, setup)
    saved = saved_table.rows
    per_step_block = sum(r.bytes for r in saved if r.stage == "block" and r.per_step)
    copies = 2 * weight_copy_count(shape, setup)
    block_copies = 2 * (matrix_parameter_count(shape) - V * shape.d_model) // L if setup.dtype == "bf16" else 0
    widest = 3 * shape.d_ff if shape.ffn == "swiglu" else 2 * shape.d_ff
    if setup.attention == "explicit":
        widest = max(widest, 2 * shape.heads * s)
    checkpointed = setup.checkpoint == "block"
    return {
        "W": P * 4 + P * OPTIMIZER_BYTES[setup.optimizer],
        "A": sum(r.bytes_for_batch(B) for r in saved),
        "C": copies,
        "A_e": _stage_bytes(saved, "embedding", B) + per_step_block,
        "A_b": bytes_per_block(shape, saved_table, B),
        "A_h": _stage_bytes(saved, "head", B),
        "C_b": 0 if checkpointed else block_copies,
        "G": P * 4,
        "G_e": (embedding_params - tied_grad) * 4,
        "G_b": block_params * 4,
        "G_h": (head_params + tied_grad) * 4,
        "T_f": B * s * V * (a + (4 if setup.dtype == "bf16" else 0)),
        "T_h": B * s * V * 8,
        "T_b": B * s * widest * a,
        "R_b": (bytes_per_block(shape, activation_table(shape, setup.replace(checkpoint="none")), B) + block_copies)
        if checkpointed
        else B * shape.heads * s * s * a if (setup.checkpoint == "selective" and setup.attention == "explicit") else 0,
        "T_e": B * s * shape.d_model * 4,
    }


MOMENTS = (
    Moment("forward-end", "End of the forward pass", (("W",), ("A",), ("C",), ("T_f",))),
    Moment("head-backward", "Backward through the loss and LM head", (("W",), ("A",), ("C",), ("G_h",), ("T_h",))),
    Moment("last-block-backward", "Backward through the last block",
           (("W",), ("A_e",), ("L", "A_b"), ("L", "C_b"), ("G_h",), ("G_b",), ("T_b",), ("R_b",))),
    Moment("first-block-backward", "Backward through the first block",
           (("W",), ("A_e",), ("A_b",), ("C_b",), ("G_h",), ("L", "G_b"), ("T_b",), ("R_b",))),
    Moment("embedding-backward", "Backward through the embedding", (("W",), ("A_e",), ("G",), ("T_e",))),
)


@lru_cache(maxsize=512)
def moments_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Bytes alive at each moment of the step (autograd accounting), for the setup's batch."""
    values = _parts(shape, setup) | {"L": shape.layers}
    rows = tuple(row(values, m.key, m.name, f(*m.formula), 1) for m in MOMENTS)
    return Table("moments", "Moments of a training step", rows, count_label="bytes", show_total=False)


def parts_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The parts the moments add up, each in bytes, for the setup's batch."""
    values = _parts(shape, setup)
    rows = tuple(row(values, key, PART_SYMBOLS[key], f((key,)), 1) for key in PART_SYMBOLS)
    return Table("parts", "What the moments add up", rows, count_label="bytes", show_total=False)


def peak_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes at the peak of one training step, for the whole batch."""
    if setup.accounting != "autograd":
        P = parameter_count(shape)
        fixed = P * (4 + 4 + OPTIMIZER_BYTES[setup.optimizer]) + 2 * weight_copy_count(shape, setup)
        return fixed + activation_table(shape, setup).bytes_for_batch()
    return max(r.count for r in moments_table(shape, setup).rows)


def largest_batch(shape: ModelShape, setup: TrainingSetup, budget_bytes: int) -> int:
    """The largest batch whose peak fits in `budget_bytes`; 0 if not even one sequence fits.

    Each moment is affine in the batch (c + m·B), so the answer is exact:
    the least of floor((budget − c) / m) over the moments.
    """
    if budget_bytes < 0:
        raise ValueError("the memory budget must be positive")
    one = _moment_values(shape, setup.replace(batch=1))
    two = _moment_values(shape, setup.replace(batch=2))
    best = MAX_BATCH
    for at_one, at_two in zip(one, two):
        slope = at_two - at_one
        constant = at_one - slope
        if constant + slope > budget_bytes:
            return 0
        if slope > 0:
            best = min(best, (budget_bytes - constant) // slope)
    return best


def _moment_values(shape: ModelShape, setup: TrainingSetup) -> list[int]:
    if setup.accounting != "autograd":
        return [peak_bytes(shape, setup)]
    return [r.count for r in moments_table(shape, setup).rows]


assert not set(PART_SYMBOLS) & set(SYMBOLS), "part symbols must not shadow shape symbols"
