"""PyTorch DDP (`framework ddp`; torch/nn/parallel/distributed.py, its C++ Reducer).

No sharding: every replica holds the whole model state. The Reducer's buckets are a
second copy of the gradients for the whole run, unless gradient_as_bucket_view makes the
gradients views of them: then each new gradient is copied into its bucket and freed, as
when accumulating. Tensor parallelism beside it is PyTorch's DTensor; pipelines are
torch.distributed.pipelining's 1F1B or GPipe schedule (calc.layout.schedule). Measured on
CPU processes rank by rank (validation/distributed.py: --tp, --pp), to the byte; the
pipelines in fp32 on two stages (under bf16 autocast around the schedule, its weight
cache lives across the micro-batches: not yet measured).
"""

from __future__ import annotations

from calc.errors import FieldError

LABEL = "PyTorch DDP"
PROVENANCE = ("DDP's buckets, DTensor's tensor parallelism and torch.distributed.pipelining's schedules (fp32, two "
              "stages) measured rank by rank on CPU processes (validation/distributed.py, --tp, --pp); on a GPU the "
              "same code's, not measured")
TENSOR_PARALLEL = "dtensor"
PIPELINE = "torch"


def check(setup) -> None:
    if setup.zero:
        raise FieldError("zero", "DDP keeps the whole model state on every replica: ZeRO stage 0 with ddp (choose "
                                 "deepspeed to shard, or megatron with zero 1 for its distributed optimizer)")
    if setup.pp > 1 and setup.schedule == "1f1b" and setup.microbatches < setup.pp:
        raise FieldError("microbatches", f"PyTorch's 1F1B schedule needs at least as many micro-batches as pipeline "
                                         f"stages ({setup.pp}); torch.distributed.pipelining refuses fewer")


def state_bytes(weights: int, gradients: int, master: int) -> tuple[int, int, int]:
    return weights, gradients, master


def gradients_into_buckets(setup) -> bool:
    """With gradient_as_bucket_view each new gradient is copied into its bucket, whose view
    the gradient becomes (zero_grad(set_to_none=True) drops the views, not the buckets)."""
    return setup.dp * setup.cp > 1 and setup.ddp_bucket_view


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    return None  # torch.optim steps (calc.peak.optimizer_temporaries)


def buffers(setup, parameters: int, block: int, weight: int, gradient: int, held_gradients: int) -> dict[str, int]:
    """The buckets as a second copy of the gradients (B_d)."""
    copy = setup.dp * setup.cp > 1 and not setup.ddp_bucket_view
    return {"B_d": held_gradients if copy else 0}
