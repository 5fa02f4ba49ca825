"""PyTorch FSDP2 (`framework fsdp2`, stages 2 and 3; torch.distributed.fsdp.fully_shard).

fp32 shards of every state (also under its bf16 MixedPrecisionPolicy: the shards are the
master weights, the gradients reduced in fp32) and, through the step, the gathered
parameters, all-gather buffers and reduce-scatter inputs of the groups at work
(calc.layout.frameworks.fsdp2_buffers). Tensor parallelism beside it would be PyTorch's
DTensor. Measured on CPU processes rank by rank (validation/distributed.py --fsdp2), to
the byte, with one micro-batch a step or gradients accumulated over several; inside
PyTorch's pipeline schedules (calc.layout.frameworks.fsdp2_pipeline) on four
(validation/distributed.py --fsdp2-pp).
"""

from __future__ import annotations

from calc.errors import FieldError

LABEL = "PyTorch FSDP2"
PROVENANCE = ("FSDP2's shards and buffers measured rank by rank on CPU processes (validation/distributed.py --fsdp2, "
              "and inside pipelines --fsdp2-pp); on a GPU its order of frees is the same code's, not measured")
TENSOR_PARALLEL = "dtensor"
PIPELINE = "torch"


def check(setup) -> None:
    if setup.zero < 2 and setup.dp > 1:
        raise FieldError("zero", "FSDP2 shards parameters, gradients and optimizer state: choose zero 3 (it "
                                 "reshards after forward, its default) or zero 2 (reshard_after_forward=False)")
    if setup.dtype == "bf16":
        raise FieldError("dtype", "calc models FSDP2's bf16 through its MixedPrecisionPolicy (bf16 parameters "
                                  "gathered, fp32 shards), not autocast: choose bf16-master (or fp32) with fsdp2")
    if setup.pp > 1 and setup.virtual_stages > 1:
        raise FieldError("virtual_stages", "calc models FSDP2 inside PyTorch's 1F1B and GPipe schedules, one chunk a "
                                           "stage: choose virtual_stages 1 with fsdp2")
    if (setup.tp, setup.cp) != (1, 1):
        raise FieldError("framework", "calc models FSDP2 over data-parallel ranks only so far: choose tp and cp 1 "
                                      "with fsdp2")


def state_bytes(weights: int, gradients: int, master: int) -> tuple[int, int, int]:
    """fp32 shards: the weights are the master copy; fp32 gradient shards."""
    return 4, 4, 0


def gradients_into_buckets(setup) -> bool:
    return False


def gathers_and_reduces(setup) -> bool:
    """Whether FSDP2 runs the step on more than one rank (its buffers apply)."""
    return setup.dp > 1


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    return None  # torch.optim steps the shards


def buffers(setup, parameters: int, block: int, weight: int, gradient: int, held_gradients: int) -> dict[str, int]:
    return {}  # its buffers are moments' parts of their own (calc.layout.frameworks.fsdp2_buffers)
