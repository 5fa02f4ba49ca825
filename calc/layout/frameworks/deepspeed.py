"""DeepSpeed ZeRO (`framework deepspeed`, stages 1-3; deepspeed 0.19.6,
deepspeed/runtime/zero/stage_1_and_2.py and stage3.py), derived from its source.

Gradients are reduced through a bucket of reduce_bucket_size values during backward;
stage 3 gathers each layer's parameters before it runs and prefetches
stage3_prefetch_bucket_size values more. At the optimizer step each rank flattens its
gradient partition into a new 16-bit tensor and makes an fp32 copy of it for the fp32
master weights (stage_1_and_2.py `step`: `self.flatten(self.averaged_gradients[i])`, then
`.to(self.single_partition_of_fp32_groups[i].dtype)`, both alive until
`del flat_grad_partition`); FusedAdam makes no temporaries. The updated parameters are
all-gathered into the flat 16-bit parameters themselves (deepspeed/runtime/utils.py
`all_gather_dp_groups` → `all_gather_into_tensor_dp_groups`; its fallback gathers narrow
views): allgather_bucket_size allocates nothing. Tensor parallelism beside it is
Megatron-LM's layers, as Megatron-DeepSpeed runs them.
"""

from __future__ import annotations

from calc.errors import FieldError

LABEL = "DeepSpeed ZeRO"
PROVENANCE = "DeepSpeed's buffers and step derived from its source (calc/layout/frameworks/deepspeed.py), not measured"
TENSOR_PARALLEL = "megatron"
PIPELINE = "megatron"


def check(setup) -> None:
    if setup.pp > 1 and setup.schedule != "1f1b":
        raise FieldError("schedule", "DeepSpeed's pipeline engine runs 1F1B (its TrainSchedule): choose 1f1b, or ddp "
                                     "for PyTorch's GPipe")
    if not setup.zero:
        raise FieldError("zero", "DeepSpeed's stage 0 is plain data parallelism: choose ZeRO stage 1, 2 or 3 with "
                                 "deepspeed, or ddp")


def state_bytes(weights: int, gradients: int, master: int) -> tuple[int, int, int]:
    return weights, gradients, master


def gradients_into_buckets(setup) -> bool:
    return False


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    """The flattened gradient partition and its fp32 copy (none if the gradients are fp32
    already), over more than one replica."""
    if setup.dp * setup.cp > 1:
        return partition * (gradient + (4 if gradient != 4 else 0))
    return None


def buffers(setup, parameters: int, block: int, weight: int, gradient: int, held_gradients: int) -> dict[str, int]:
    """The reduce bucket (B_r) and, under stage 3, the gathered layer and the prefetch
    bucket (B_p): `parameters` on the GPU, `block` in one layer."""
    if setup.dp * setup.cp == 1:
        return {}
    return {"B_r": min(setup.reduce_bucket, parameters) * gradient,
            "B_p": (block + min(setup.prefetch_bucket, parameters)) * weight if setup.zero == 3 else 0}
