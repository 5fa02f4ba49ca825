"""Fixed memory: parameters, gradients, optimizer state, and autocast's weight copies.

Independent of the batch. Three regimes (calc.setup.STATE_BYTES): fp32 everywhere; bf16
autocast, where the fp32 parameters are the master weights and autocast makes a bf16 copy
of every weight matrix that the graph keeps for backward (2 bytes per matrix parameter);
and bf16 weights and gradients with an fp32 master copy kept by the optimizer.
"""

from __future__ import annotations

from functools import lru_cache

from calc.layout.frameworks import state_bytes as framework_state_bytes
from calc.lora import (EIGHT_BIT_OPTIMIZERS, adamw_8bit_bytes, adapter_count, adapter_tensors, paged_bytes,
                       quant_label, quantized_bytes, quantized_values, trains_adapters)
from calc.frozen import trainable_count, trainable_matrices, trainable_tensors
from calc.parameters import matrix_parameter_count, parameter_count, parameter_tensors
from calc.setup import STATE_BYTES, TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row

OPTIMIZER_BYTES = {"adamw": 8, "sgd": 4, "adamw-8bit": 2, "paged-adamw-8bit": 2}
"""Bytes of optimizer state per parameter: AdamW's two fp32 moments, SGD's fp32 momentum,
AdamW8bit's two 8-bit moments (before its block scales and its small tensors' fp32 state,
which calc.lora.adamw_8bit_bytes adds; the paged one's, where unified memory holds them,
calc.lora.paged_bytes)."""


def state_bytes(setup: TrainingSetup) -> tuple[int, int, int]:
    """Bytes per parameter of (weights, gradients, optimizer state) in the setup's regime:
    the optimizer's state holds the fp32 master weights where the weights are bf16; the
    gradients are fp32 where the framework keeps them so (Megatron-LM, FSDP2); FSDP2's
    fp32 shards are the master weights (its bf16 parameters are gathered, not held)."""
    weights, gradients, master = framework_state_bytes(setup, *STATE_BYTES[setup.dtype])
    return weights, gradients, master + OPTIMIZER_BYTES[setup.optimizer]


def lora_states(shape: ModelShape, setup: TrainingSetup, parameters: int | None = None) -> tuple[int, int, int]:
    """Bytes of (weights, gradients, optimizer state) of a LoRA run (calc.lora) on one GPU,
    holding `parameters` of the base model (all of them when None): the frozen base in its
    dtype (fp32; bf16 under bf16-master), the adapters in fp32 (peft's default), and
    gradients (fp32) and optimizer state for the adapters alone."""
    base = parameter_count(shape) if parameters is None else parameters
    adapters = adapter_count(shape, setup)
    frozen = base * (2 if setup.dtype == "bf16-master" else 4)
    if setup.finetune == "qlora":  # the blocks' linear weights in 4 (or 8) bits, the rest bf16 (or fp32, prepared)
        frozen = setup.stream_bytes * (base - quantized_values(shape)) + quantized_bytes(shape, setup)
    return frozen + 4 * adapters, 4 * adapters, adapter_optimizer_bytes(shape, setup)


def adapter_optimizer_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes of the optimizer's state over LoRA's adapters that PyTorch's allocator holds
    (a paged optimizer's paged moments apart: paged_optimizer_bytes)."""
    if setup.optimizer in EIGHT_BIT_OPTIMIZERS:
        return eight_bit_state_bytes(shape, setup)
    return OPTIMIZER_BYTES[setup.optimizer] * adapter_count(shape, setup)


def eight_bit_state_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes of bitsandbytes' 8-bit AdamW's state that PyTorch's allocator holds when it
    steps every parameter that trains (full training, one GPU or each DDP replica): the
    same state per tensor as over LoRA's adapters (calc.lora.adamw_8bit_bytes), the
    paged moments apart (paged_optimizer_bytes)."""
    return adamw_8bit_bytes(_stepped_tensors(shape, setup), paged=pages_state(setup))


def _stepped_tensors(shape: ModelShape, setup: TrainingSetup) -> tuple[int, ...]:
    """The values of each tensor the optimizer steps: the adapters under LoRA, else the
    parameters that train."""
    if trains_adapters(setup):
        return adapter_tensors(shape, setup)
    return trainable_tensors(shape, setup) if setup.freezes else parameter_tensors(shape)


def pages_state(setup: TrainingSetup) -> bool:
    """Whether the optimizer keeps state in unified memory: PagedAdamW8bit on a GPU (on the
    CPU bitsandbytes falls back to ordinary buffers)."""
    return setup.optimizer == "paged-adamw-8bit" and setup.device == "cuda"


def paged_optimizer_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes of optimizer state in unified memory (cudaMallocManaged), outside PyTorch's
    allocator and so outside max_memory_allocated and calc's peak: the driver moves it to
    the host when the GPU's memory runs short, and back for the step. 0 unless paged."""
    return paged_bytes(_stepped_tensors(shape, setup)) if pages_state(setup) else 0


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
    return trainable_matrices(shape, setup) if setup.freezes else matrix_parameter_count(shape)


def fixed_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """Parameters, gradients and optimizer state (and bf16 weight copies), in bytes. None
    of them reads the batch: made once for every batch."""
    return _fixed_table(shape, setup.replace(batch=1))


@lru_cache(maxsize=256)
def _fixed_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    if trains_adapters(setup):
        return _lora_fixed_table(shape, setup)
    values = {"P": parameter_count(shape), "P_w": matrix_parameter_count(shape), "V": shape.vocab, "d": shape.d_model,
              "P_t": trainable_count(shape, setup), "P_wt": trainable_matrices(shape, setup)}
    optimizer = "AdamW moments m and v" if setup.optimizer == "adamw" else "SGD momentum buffer"
    weights, gradients, kept = state_bytes(setup)
    master = weights == 2
    trains = ("P_t",) if setup.freezes else ("P",)  # frozen parameters have no gradient and no state
    of_those = " of the parameters that train" if setup.freezes else ""
    rows = [
        row(values, "parameters", "Parameters (bf16 weights)" if master else "Parameters (fp32 master weights)",
            f(("P",)), weights),
        row(values, "gradients", f"Gradients ({'bf16' if master else 'fp32'}){of_those}", f(trains), gradients),
        row(values, "optimizer", f"Optimizer state: {'fp32 master weights and ' if master else ''}{optimizer} (fp32)"
            f"{of_those}", f(trains), kept) if setup.optimizer not in EIGHT_BIT_OPTIMIZERS else
        _eight_bit_row(values | {"O_b": eight_bit_state_bytes(shape, setup)}, setup, of_those or " of the parameters"),
    ]
    if setup.dtype == "bf16":
        if setup.checkpoint == "block":
            rows.append(row(values, "weight-copies", "bf16 copy of the LM head kept by autocast", f(("V", "d")), 2,
                            note="blocks' copies are remade when each block is recomputed"))
        elif setup.freezes:
            rows.append(row(values, "weight-copies", "bf16 copies of the weights that train, kept by autocast",
                            f(("P_wt",)), 2, note="autocast caches no copy of a frozen weight"))
        else:
            rows.append(row(values, "weight-copies", "bf16 weight copies kept by autocast", f(("P_w",)), 2))
    return Table("fixed", "Fixed memory", tuple(rows), count_label="parameters",
                 notes=_eight_bit_notes(shape, setup), counts_add_up=False)


def _eight_bit_row(values: dict, setup: TrainingSetup, of_what: str):
    """The optimizer row of bitsandbytes' 8-bit AdamW over `of_what`, counted in bytes (O_b)."""
    if pages_state(setup):
        return row(values, "optimizer", f"Optimizer state{of_what} in PyTorch's allocator: PagedAdamW8bit's block "
                                        "scales, and the moments of tensors under 100,000 values (bitsandbytes; "
                                        "counted in bytes)", f(("O_b",)), 1)
    return row(values, "optimizer", f"Optimizer state{of_what}: AdamW8bit's moments in 8 bits with fp32 block scales, "
                                    "fp32 for tensors under 4,096 values (bitsandbytes; counted in bytes)",
               f(("O_b",)), 1)


def _eight_bit_notes(shape: ModelShape, setup: TrainingSetup) -> tuple[str, ...]:
    """The fixed table's notes on bitsandbytes' 8-bit state: how it is known on CUDA, and
    what a paged optimizer keeps outside the table."""
    if setup.optimizer not in EIGHT_BIT_OPTIMIZERS:
        return ()
    notes = ("bitsandbytes' 8-bit state is measured on CPU tensors (validation/results-lora.json, "
             "validation/timeline.json); on CUDA the same Optimizer8bit code lays it out: derived from its source, not "
             "measured on a GPU.",) if setup.device == "cuda" else ()
    paged = paged_optimizer_bytes(shape, setup)
    return notes + ((f"Not in this table: PagedAdamW8bit's 8-bit moments of the tensors of 100,000 values or more, "
                     f"{paged:,} bytes in unified memory, outside PyTorch's allocator (derived from bitsandbytes' "
                     "source, not measured on a GPU).",) if paged else ())


def _quantized_label(setup: TrainingSetup) -> str:
    """The quantized weights' row: how bitsandbytes stores them (calc.lora.four_bit_bytes, int8_bytes)."""
    if setup.quant_type == "int8":
        return ("Frozen linear weights of the blocks in 8-bit int8 (LLM.int8()), one a byte, with an fp32 scale for "
                "each output row (bitsandbytes; counted in bytes)")
    return (f"Frozen linear weights of the blocks in {quant_label(setup)}, two a byte, with their block scales"
            + (" (double quantisation)" if setup.double_quant else " (fp32)") + " and codes (bitsandbytes; counted in "
            "bytes)")


def _lora_fixed_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """A LoRA run's fixed memory: the frozen base, the adapters with their gradients and
    optimizer state, and under bf16 autocast the adapters' bf16 copies autocast caches
    (the frozen weights' copies are made at every call and kept as activations)."""
    values = {"P": parameter_count(shape), "P_a": adapter_count(shape, setup), "P_o": parameter_count(shape)
              - quantized_values(shape), "Q_b": quantized_bytes(shape, setup),
              "O_b": adapter_optimizer_bytes(shape, setup)}
    optimizer = "AdamW moments m and v" if setup.optimizer == "adamw" else "SGD momentum buffer"
    bf16_base = setup.dtype == "bf16-master"
    base = [row(values, "parameters", f"Frozen base weights ({'bf16' if bf16_base else 'fp32'})", f(("P",)),
                2 if bf16_base else 4)]
    if setup.finetune == "qlora":
        base = [row(values, "parameters", "Frozen weights outside the blocks' linear layers ("
                    + ("fp32, cast by prepare_model_for_kbit_training" if setup.upcast_base else "bf16")
                    + "): embeddings, norms, head", f(("P_o",)), setup.stream_bytes),
                row(values, "quantized", _quantized_label(setup), f(("Q_b",)), 1)]
    rows = [
        *base,
        row(values, "adapters", "LoRA adapters A and B (fp32)", f(("P_a",)), 4),
        row(values, "gradients", "Gradients of the adapters (fp32)", f(("P_a",)), 4),
        row(values, "optimizer", f"Optimizer state of the adapters: {optimizer} (fp32)", f(("P_a",)),
            OPTIMIZER_BYTES[setup.optimizer]) if setup.optimizer not in EIGHT_BIT_OPTIMIZERS else
        _eight_bit_row(values, setup, " of the adapters"),
    ]
    if setup.dtype == "bf16":
        rows.append(row(values, "weight-copies", "bf16 copies of the adapters, cached by autocast", f(("P_a",)), 2))
    return Table("fixed", "Fixed memory", tuple(rows), count_label="parameters",
                 notes=_eight_bit_notes(shape, setup), counts_add_up=False)
