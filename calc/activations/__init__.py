"""Activation accountings, one module each: seed, cs336, megatron (lists from papers and
courses) and what autograd keeps, per implementation: reference (autograd), scratch, hf."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from calc.activations.autograd import autograd_table
from calc.activations.cs336 import cs336_table
from calc.activations.hf import hf_table, is_gpt2
from calc.activations.lora import lora_table
from calc.activations.megatron import megatron_table
from calc.activations.scratch import scratch_table
from calc.activations.seed import seed_table
from calc.cuda import MEASURED_ARCH
from calc.errors import FieldError
from calc.activations.frozen import frozen_rows
from calc.frozen import check as check_frozen
from calc.lora import check as check_lora
from calc.lora import trains_adapters
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table

_TABLES = {"seed": seed_table, "cs336": cs336_table, "megatron": megatron_table}
_IMPLEMENTATIONS = {"reference": autograd_table, "scratch": scratch_table, "hf": hf_table}
"""What autograd keeps, by the implementation that runs the model."""


PROVENANCE = {
    "cpu": "Every row measured: PyTorch 2.13 on the CPU, saved-tensor hooks (validation/results.json).",
    "cuda-measured": "Every row measured on an NVIDIA H200 (sm90): PyTorch 2.11 with real CUDA tensors and "
                     "saved-tensor hooks, equal to the byte at small shapes (validation/results-cuda.json); full "
                     "sizes from the same rules on fake tensors (validation/results-cuda-derived.json).",
    "cuda-derived": "Every row derived for this card from PyTorch's source (autocast's op lists, the attention "
                    "kernel it picks and that kernel's saved tensors, the fused dropout) on fake tensors "
                    "(validation/results-cuda-derived.json); not measured on this card. The same rules equal an "
                    "H200's measurements (sm90).",
    "lora-cpu": "Every row measured: peft 0.21's LoRA over this implementation's code (transformers 5.23's, or the "
                "reference model's), PyTorch 2.13 on the CPU, saved-tensor hooks (validation/results-lora.json).",
    "lora-cuda": "LoRA's rows are measured on the CPU (validation/results-lora.json); on CUDA calc applies the same "
                 "rules with CUDA's dropout masks and attention kernel: derived, not measured on a GPU.",
}
"""Where the rows of the autograd accounting come from: the CPU, an sm90 card (measured),
another card (derived)."""


def provenance(setup: TrainingSetup) -> str:
    """The sentence saying where a setup's autograd rows come from."""
    if trains_adapters(setup):
        return PROVENANCE["lora-cpu" if setup.device == "cpu" else "lora-cuda"]
    if setup.device == "cpu":
        return PROVENANCE["cpu"]
    return PROVENANCE["cuda-measured" if setup.arch == MEASURED_ARCH else "cuda-derived"]


def check_implementation(shape: ModelShape, setup: TrainingSetup) -> None:
    """FieldError where the autograd accounting has no measured rows for this combination
    of implementation, architecture and options."""
    check_lora(shape, setup)
    check_frozen(shape, setup)
    if setup.accounting != "autograd":
        return
    if setup.dtype == "bf16-master" and shape.implementation != "reference" and setup.finetune == "full":
        raise FieldError("dtype", "a model cast to bf16 (bf16 weights, fp32 master) is measured for the reference "
                                  "implementation only so far: choose fp32 or bf16 autocast, or implementation reference")
    if shape.implementation == "scratch":
        if (shape.ffn, shape.norm, shape.positions) != ("swiglu", "rmsnorm", "rope"):
            raise FieldError("implementation", "a from-scratch CS336 model is SwiGLU, RMSNorm and RoPE: choose those, "
                                               "or another implementation")
        if setup.attention != "explicit":
            raise FieldError("attention", "a from-scratch CS336 model writes attention out: choose explicit")
        if setup.checkpoint != "none":
            raise FieldError("checkpoint", "checkpointing a from-scratch model is not measured yet: choose none")
    if shape.implementation == "hf":
        llama = (shape.ffn, shape.norm, shape.positions) == ("swiglu", "rmsnorm", "rope")
        if not (is_gpt2(shape) or llama):
            raise FieldError("implementation", "Hugging Face code here is GPT-2 (LayerNorm, GELU MLP, learned "
                                               "positions) or Llama-style (RMSNorm, SwiGLU, RoPE)")
        if shape.fused_qkv != is_gpt2(shape):
            raise FieldError("fused_qkv", "GPT-2's code makes Q, K and V in one projection (c_attn), Llama-style code "
                                          f"in three: fused_qkv must be {str(is_gpt2(shape)).lower()} here")
        if is_gpt2(shape) and shape.kv_heads != shape.heads:
            raise FieldError("kv_heads", "GPT-2 has as many key/value heads as heads")
        if shape.kv_heads == 1 < shape.heads:
            raise FieldError("kv_heads", "one key/value head (multi-query attention) is not measured for Hugging "
                                         "Face code: its repeated K and V are views or copies depending on the batch")
        if setup.checkpoint == "selective":
            raise FieldError("checkpoint", "Hugging Face models checkpoint whole layers: choose none or block")


def activation_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The activation rows of `setup.accounting`, per batch element, with the batch set.

    Selective recomputation (checkpoint="selective") recomputes the attention core in
    backward, so the quadratic rows (scores, probabilities, mask) are not kept.
    """
    if setup.batch == 1:
        return _per_sequence_table(shape, setup)
    # the rows are per sequence: one table serves every batch size
    return replace(_per_sequence_table(shape, setup.replace(batch=1)), batch=setup.batch)


@lru_cache(maxsize=512)
def _per_sequence_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    check_implementation(shape, setup)  # never rows of a setup nobody measured
    make = _IMPLEMENTATIONS[shape.implementation] if setup.accounting == "autograd" else _TABLES[setup.accounting]
    if trains_adapters(setup):  # peft's LoRA (calc.lora.check: over Hugging Face's Llama-style code)
        make = lora_table
    table = make(shape, setup)
    if setup.freezes:  # full fine-tuning with the embedding and the first blocks frozen (calc.frozen)
        table = replace(table, rows=frozen_rows(table.rows, shape, setup))
    unused = hf_settings(shape) if shape.implementation != "hf" and setup.accounting == "autograd" else ()
    if unused:
        table = replace(table, notes=table.notes + (
            f"{', '.join(unused)}: Hugging Face settings, which the {shape.implementation} implementation does not have "
            "(it computes GELU with F.gelu, has no dropout and returns no cache).",))
    if setup.accounting == "autograd":
        table = replace(table, notes=table.notes + (provenance(setup),))
    if setup.checkpoint == "selective" and setup.accounting != "megatron":
        kept = tuple(r for r in table.rows if r.category != "quadratic")
        table = replace(table, rows=kept, notes=table.notes + ("Selective recomputation: the attention core is recomputed.",))
    return table


def bytes_per_block(shape: ModelShape, table: Table, batch: int = 1) -> int:
    """Bytes one transformer block keeps for `batch` sequences: the blocks' rows (each
    carries the factor L) divided by the layers. Rows kept once per step, such as the
    shared causal mask, are left out."""
    return sum(r.bytes_for_batch(batch) for r in table.rows if r.stage == "block" and not r.per_step) // shape.layers


def quadratic_bytes(table: Table, batch: int = 1) -> int:
    """Bytes of the rows that grow with the square of the context (category "quadratic")."""
    return sum(r.bytes_for_batch(batch) for r in table.rows if r.category == "quadratic")


def block_rows(shape: ModelShape, setup: TrainingSetup) -> tuple:
    """The rows all L blocks keep under the autograd accounting, nothing recomputed (each
    count has the factor L; rows kept once per step included)."""
    table = activation_table(shape, setup.replace(accounting="autograd", checkpoint="none", batch=1))
    return tuple(r for r in table.rows if r.stage == "block")


def hf_settings(shape: ModelShape) -> tuple[str, ...]:
    """The shape's settings that only Hugging Face code has, where set."""
    return tuple(text for text, present in (
        (f"dropout {shape.dropout:g}", shape.dropout > 0), ("use_cache", shape.use_cache),
        ("fused Q/K/V", shape.fused_qkv), ("activation gelu_new", shape.activation == "gelu_new"),
        (f"sliding window {shape.sliding_window}", shape.sliding_window is not None)) if present)
