"""The peak of a training step, and the largest batch that fits a memory budget.

Under the `autograd` accounting the peak is found by walking the step's moments, in the
steady state (the optimizer's state exists; gradients were set to None after the last
step, PyTorch's default): the end of the forward pass, backward through the loss and LM
head, backward through the last and the first block (the blocks in between lie on a
straight line between those two), backward through the embedding, and the optimizer
step. At each moment we add up what is alive:

- always: the parameters and optimizer state, the buffers (RoPE tables) and the
  optimizer's step counts where they live on the device, the batch's token ids and
  targets, which the loop holds;
- the saved tensors not yet freed; autocast's bf16 weight copies (until the autocast
  region exits its cache holds every copy, even under checkpointing; after it, only the
  copies the graph keeps);
- after the forward pass, the loss (and the logits, where the loop keeps them);
- the gradients made so far, or all of them from the second micro-batch on (gradient
  accumulation keeps them through every later micro-batch);
- the moment's working tensors. Exact, and checked against a live-tensor timeline of
  real CPU steps (validation/timeline.py): the logits and their fp32 copy while
  log-softmax runs; the gradients of the log-probabilities and of the logits (the head's
  weight gradient is made only after both are freed); the optimizer step's temporaries:
  foreach AdamW's sqrt of every second moment (4 bytes a parameter), the for-loop's
  sqrt and quotient of one parameter while the previous one's denominator is still
  referenced, nothing for fused AdamW or for SGD. A stated model, not exact: inside a
  block, the largest gradients alive together, 2·B·h·s² (softmax, explicit attention)
  or 3·B·s·d_ff (SwiGLU; 2 for GELU) values in the compute dtype; under checkpointing,
  also the block's recomputed saved tensors and bf16 weight copies (under selective
  recomputation, the recomputed softmax output); at the embedding, the gradient of its
  output, B·s·d fp32.

The `seed` and `cs336` accountings have no moments: their peak is their own sum,
parameters + gradients + optimizer state + activations, as those derivations define it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from calc.activations import activation_table, bytes_per_block
from calc.fixed import OPTIMIZER_BYTES, buffer_bytes, weight_copy_count
from calc.parameters import matrix_parameter_count, parameter_count, parameter_table, parameter_tensors
from calc.setup import MAX_BATCH, TrainingSetup
from calc.shape import ModelShape
from calc.table import SYMBOLS, Table, f, row

INDEX_BYTES, LOSS_BYTES, STEP_COUNT_BYTES = 8, 4, 4

PART_SYMBOLS = {
    "W": "parameters and optimizer state (held all step)",
    "X": "buffers, and the optimizer's step counts where they are on the device",
    "I": "the batch's token ids and targets (int64), held by the loop",
    "A": "saved activations at the end of the forward pass (the inputs apart)",
    "C": "bf16 weight copies in autocast's cache (until the autocast region exits)",
    "C_g": "bf16 weight copies the graph keeps for backward",
    "K": "held by the loop's names after the forward pass: the loss, and the logits if it keeps them",
    "K_l": "the loss just made, and the last one, referenced until the new one replaces it",
    "A_w": "saved activations once the log-probabilities are freed",
    "A_e": "saved by the embedding", "A_b": "saved by one block", "A_h": "saved by the final norm, head and loss",
    "C_b": "one block's bf16 weight copies",
    "G": "all parameter gradients", "G_a": "gradients held from earlier micro-batches (accumulation)",
    "G_b": "one block's new gradients", "G_h": "final norm and LM head's new gradients (the shared matrix when tied)",
    "T_f": "logits while log-softmax runs", "T_h": "gradients of log-probabilities and logits",
    "T_b": "a block's largest gradients alive together", "R_b": "a recomputed block's saved tensors and weight copies",
    "T_e": "gradient of the embedding output", "T_o": "the optimizer step's temporaries",
    "T_w": "the LM head's backward: the logits' gradient, its input's, and (accumulating) its weight's new gradient",
}

_INPUT_ROWS = {"reference": ("token-ids", "target-ids"), "scratch": ("token-ids", "target-ids"), "hf": ("token-ids",)}
"""Rows that are the loop's own input tensors (or views of them), counted in I instead."""


@dataclass(frozen=True)
class Moment:
    key: str
    name: str
    formula: tuple  # terms for calc.table.f


def _stage_bytes(rows, stage: str, batch: int) -> int:
    return sum(r.bytes_for_batch(batch) for r in rows if r.stage == stage)


def optimizer_temporaries(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes the optimizer step allocates beyond its state, at its fullest. AdamW foreach:
    _foreach_sqrt of every second moment at once; for-loop: one parameter's sqrt and the
    quotient made from it, while the previous parameter's denominator is still held by its
    Python name; fused (one kernel) and SGD (in place): none (torch/optim/adam.py, sgd.py)."""
    if setup.optimizer != "adamw" or setup.step_impl == "fused":
        return 0
    if setup.step_impl == "foreach":
        return 4 * parameter_count(shape)
    sizes = (0, *parameter_tensors(shape))
    return 4 * max(before + 2 * size for before, size in zip(sizes, sizes[1:]))


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
    accumulating = setup.microbatches > 1

    saved_table = activation_table(shape, setup)
    inputs = _INPUT_ROWS[shape.implementation]
    saved = tuple(r for r in saved_table.rows if r.key not in inputs)
    per_step_block = sum(r.bytes for r in saved if r.stage == "block" and r.per_step)
    block_copies = 2 * (matrix_parameter_count(shape) - V * shape.d_model) // L if setup.dtype == "bf16" else 0
    widest = 3 * shape.d_ff if shape.ffn == "swiglu" else 2 * shape.d_ff
    if setup.attention == "explicit":
        widest = max(widest, 2 * shape.heads * s)
    checkpointed = setup.checkpoint == "block"
    steps_on_device = setup.device == "cpu" or setup.step_impl == "fused"
    return {
        "W": P * 4 + P * OPTIMIZER_BYTES[setup.optimizer],
        "X": buffer_bytes(shape) + (STEP_COUNT_BYTES * len(parameter_tensors(shape))
                                    if steps_on_device and setup.optimizer == "adamw" else 0),
        "I": 2 * B * s * INDEX_BYTES,
        "A": sum(r.bytes_for_batch(B) for r in saved),
        "C": 2 * matrix_parameter_count(shape) if setup.dtype == "bf16" else 0,
        "C_g": 2 * weight_copy_count(shape, setup),
        "K": LOSS_BYTES + (B * s * V * a if setup.keep_logits else 0),
        "K_l": 2 * LOSS_BYTES,
        "A_w": sum(r.bytes_for_batch(B) for r in saved if r.key != "log-probs"),
        "A_e": _stage_bytes(saved, "embedding", B) + per_step_block,
        "A_b": bytes_per_block(shape, saved_table, B),
        "A_h": _stage_bytes(saved, "head", B),
        "C_b": 0 if checkpointed else block_copies,
        "G": P * 4,
        "G_a": P * 4 if accumulating else 0,
        "G_b": 0 if accumulating else block_params * 4,
        "G_h": 0 if accumulating else (head_params + tied_grad) * 4,
        "T_f": B * s * V * (a + (4 if setup.dtype == "bf16" else 0)),
        "T_h": B * s * V * 8,
        "T_b": B * s * widest * a,
        "R_b": (bytes_per_block(shape, activation_table(shape, setup.replace(checkpoint="none")), B) + block_copies)
        if checkpointed
        else B * shape.heads * s * s * a if (setup.checkpoint == "selective" and setup.attention == "explicit") else 0,
        "T_e": B * s * shape.d_model * 4,
        "T_o": optimizer_temporaries(shape, setup),
        "T_w": 4 * B * s * (V + shape.d_model) + (V * shape.d_model * (6 if setup.dtype == "bf16" else 4)
                                                 if accumulating else 0),
    }


_HELD = (("W",), ("X",), ("I",))
MOMENTS = (
    Moment("forward-end", "End of the forward pass", (*_HELD, ("A",), ("C",), ("K_l",), ("G_a",), ("T_f",))),
    Moment("head-backward", "Backward through the loss and LM head", (*_HELD, ("A",), ("C_g",), ("K",), ("G_a",), ("T_h",))),
    Moment("head-weight-gradient", "The LM head's weight gradient",
           (*_HELD, ("A_w",), ("C_g",), ("K",), ("G_a",), ("G_h",), ("T_w",))),
    Moment("last-block-backward", "Backward through the last block",
           (*_HELD, ("A_e",), ("L", "A_b"), ("L", "C_b"), ("K",), ("G_a",), ("G_h",), ("G_b",), ("T_b",), ("R_b",))),
    Moment("first-block-backward", "Backward through the first block",
           (*_HELD, ("A_e",), ("A_b",), ("C_b",), ("K",), ("G_a",), ("G_h",), ("L", "G_b"), ("T_b",), ("R_b",))),
    Moment("embedding-backward", "Backward through the embedding", (*_HELD, ("A_e",), ("K",), ("G",), ("T_e",))),
    Moment("optimizer-step", "The optimizer step", (*_HELD, ("K",), ("G",), ("T_o",))),
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
