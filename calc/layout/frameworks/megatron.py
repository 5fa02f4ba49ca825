"""Megatron-LM (`framework megatron`; Megatron-LM d98e8a6), derived from its source.

With bf16 it accumulates and all-reduces gradients in fp32 (megatron/training/
arguments.py lines 1204-1217: `--main-grads-dtype` fp32 by default, line 3671): bf16
parameters (2 bytes), fp32 main gradients (4), fp32 main parameters and Adam's two
moments (12), 18 bytes a parameter; its distributed optimizer (`zero 1` here) shards the
12 over the data-parallel (and context-parallel) ranks: 6 + 12/N
(megatron/training/theoretical_memory_usage.py, `num_bytes_per_parameter`). The gradient
buffer is the gradients, and its buckets are views of it; its Adam is fused.
"""

from __future__ import annotations

from calc.errors import FieldError

LABEL = "Megatron-LM"
PROVENANCE = "Megatron-LM's precision and buffers derived from its source (calc/layout/frameworks/megatron.py), " \
             "not measured"
TENSOR_PARALLEL = "megatron"
PIPELINE = "megatron"


def check(setup) -> None:
    if setup.pp > 1 and setup.schedule != "1f1b":
        raise FieldError("schedule", "Megatron-LM runs pipelines under 1F1B (interleaved with virtual stages): choose "
                                     "1f1b, or ddp for PyTorch's GPipe")
    if setup.zero >= 2:
        raise FieldError("zero", "Megatron-LM shards the optimizer state (its distributed optimizer: zero 1), "
                                 "not gradients or parameters: choose zero 0 or 1 with megatron")
    if setup.dtype == "bf16":
        raise FieldError("dtype", "Megatron-LM trains bf16 weights with fp32 main gradients and parameters, not "
                                  "under PyTorch's autocast: choose bf16-master (or fp32) with megatron")


def state_bytes(weights: int, gradients: int, master: int) -> tuple[int, int, int]:
    """fp32 main gradients whatever the weights."""
    return weights, 4, master


def gradients_into_buckets(setup) -> bool:
    return False


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    return 0  # fused Adam


def buffers(setup, parameters: int, block: int, weight: int, gradient: int, held_gradients: int) -> dict[str, int]:
    return {}  # its gradient buffer is the gradients
