"""Fixed memory: parameters, gradients, optimizer state, and autocast's weight copies.

Independent of the batch. Three regimes (calc.setup.STATE_BYTES): fp32 everywhere; bf16
autocast, where the fp32 parameters are the master weights and autocast makes a bf16 copy
of every weight matrix that the graph keeps for backward (2 bytes per matrix parameter);
and bf16 weights and gradients with an fp32 master copy kept by the optimizer.
"""

from __future__ import annotations

from calc.layout.frameworks import state_bytes as framework_state_bytes
from calc.parameters import matrix_parameter_count, parameter_count
from calc.setup import STATE_BYTES, TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row

OPTIMIZER_BYTES = {"adamw": 8, "sgd": 4}
"""fp32 bytes of optimizer state per parameter: AdamW's two moments, SGD's momentum."""


def state_bytes(setup: TrainingSetup) -> tuple[int, int, int]:
    """Bytes per parameter of (weights, gradients, optimizer state) in the setup's regime:
    the optimizer's state holds the fp32 master weights where the weights are bf16; the
    gradients are fp32 where the framework keeps them so (Megatron-LM, FSDP2); FSDP2's
    fp32 shards are the master weights (its bf16 parameters are gathered, not held)."""
    weights, gradients, master = framework_state_bytes(setup, *STATE_BYTES[setup.dtype])
    return weights, gradients, master + OPTIMIZER_BYTES[setup.optimizer]


def buffer_bytes(shape: ModelShape) -> int:
    """Bytes of the model's buffers (fp32, not trained): the reference model's RoPE cos and
    sin tables, [s, d_h/2] each (registered whatever the positions); the from-scratch
    model's, one pair per layer; Llama-style Hugging Face code's inverse frequencies and
    their original, d_h/2 each; GPT-2's code has none."""
    if shape.implementation == "hf":
        return 0 if shape.positions == "learned" else 2 * (shape.d_head // 2) * 4
    tables = 2 * shape.context * (shape.d_head // 2) * 4
    return tables * shape.layers if shape.implementation == "scratch" else tables


def weight_copy_count(shape: ModelShape, setup: TrainingSetup) -> int:
    """Matrix parameters whose bf16 copies the graph holds at the end of the forward pass.

    Under per-block checkpointing the blocks' copies are dropped with the rest of the
    block's graph; only the LM head's (outside the blocks) stays.
    """
    if setup.dtype != "bf16":
        return 0
    if setup.checkpoint == "block":
        return shape.vocab * shape.d_model
    return matrix_parameter_count(shape)


def fixed_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Parameters, gradients and optimizer state (and bf16 weight copies), in bytes."""
    values = {"P": parameter_count(shape), "P_w": matrix_parameter_count(shape), "V": shape.vocab, "d": shape.d_model}
    optimizer = "AdamW moments m and v" if setup.optimizer == "adamw" else "SGD momentum buffer"
    weights, gradients, kept = state_bytes(setup)
    master = weights == 2
    rows = [
        row(values, "parameters", "Parameters (bf16 weights)" if master else "Parameters (fp32 master weights)",
            f(("P",)), weights),
        row(values, "gradients", f"Gradients ({'bf16' if master else 'fp32'})", f(("P",)), gradients),
        row(values, "optimizer", f"Optimizer state: {'fp32 master weights and ' if master else ''}{optimizer} (fp32)",
            f(("P",)), kept),
    ]
    if setup.dtype == "bf16":
        if setup.checkpoint == "block":
            rows.append(row(values, "weight-copies", "bf16 copy of the LM head kept by autocast", f(("V", "d")), 2,
                            note="blocks' copies are remade when each block is recomputed"))
        else:
            rows.append(row(values, "weight-copies", "bf16 weight copies kept by autocast", f(("P_w",)), 2))
    return Table("fixed", "Fixed memory", tuple(rows), count_label="parameters")
