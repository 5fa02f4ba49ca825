"""What each training framework keeps beyond the model states' textbook bytes, read from
its source (derived: none of them runs here on a GPU; PyTorch's run on CPU processes).

- **PyTorch DDP** (`framework ddp`; torch/nn/parallel/distributed.py, its C++ Reducer):
  no sharding; the Reducer's buckets are a second copy of the gradients for the whole
  run, unless gradient_as_bucket_view makes the gradients views of them: then each new
  gradient is copied into its bucket and freed, as when accumulating. Measured on CPU
  processes rank by rank (validation/distributed.py), to the byte.
- **DeepSpeed ZeRO** (`framework deepspeed`, stages 1-3; deepspeed 0.19.6,
  deepspeed/runtime/zero/stage_1_and_2.py and stage3.py): gradients are reduced through a
  bucket of reduce_bucket_size values during backward; stage 3 gathers each layer's
  parameters before it runs and prefetches stage3_prefetch_bucket_size values more. At
  the optimizer step each rank flattens its gradient partition into a new 16-bit tensor
  and makes an fp32 copy of it for the fp32 master weights (stage_1_and_2.py `step`:
  `self.flatten(self.averaged_gradients[i])`, then `.to(self.single_partition_of_fp32_groups
  [i].dtype)`, both alive until `del flat_grad_partition`); FusedAdam makes no temporaries.
  The updated parameters are all-gathered into the flat 16-bit parameters themselves
  (deepspeed/runtime/utils.py `all_gather_dp_groups` → `all_gather_into_tensor_dp_groups`;
  its fallback gathers narrow views): allgather_bucket_size allocates nothing.
- **Megatron-LM** (`framework megatron`; Megatron-LM d98e8a6): with bf16 it accumulates
  and all-reduces gradients in fp32 (megatron/training/arguments.py lines 1204-1217:
  `--main-grads-dtype` fp32 by default, line 3671): bf16 parameters (2 bytes), fp32 main
  gradients (4), fp32 main parameters and Adam's two moments (12), 18 bytes a parameter;
  its distributed optimizer (`zero 1` here) shards the 12 over the data-parallel (and
  context-parallel) ranks: 6 + 12/N (megatron/training/theoretical_memory_usage.py,
  `num_bytes_per_parameter`). The gradient buffer is the gradients, and its buckets are
  views of it; its Adam is fused.

- **PyTorch FSDP2** (`framework fsdp2`, stages 2 and 3; calc.fsdp2): fp32 shards of
  every state and, through the step, the gathered parameters, all-gather buffers and
  reduce-scatter inputs of the groups at work. Measured on CPU processes rank by rank
  (validation/distributed.py --fsdp2), to the byte.

- **Tensor parallelism** runs through PyTorch's DTensor under ddp and fsdp2 (as torchtitan
  plans it) and through Megatron-LM's layers under megatron and deepspeed: the two differ
  in what a rank keeps (`runs_dtensor` and the rules after it). DTensor's measured on CPU
  processes rank by rank (validation/distributed.py --tp).
- **NCCL** takes `setup.nccl` bytes on a GPU for each communicator of its layout, outside
  PyTorch's allocator (`communicators`): an assumption the reader sets.

`framework auto` (the default) is DDP for ZeRO stage 0 and DeepSpeed for stages 1 to 3.
"""

from __future__ import annotations

from calc.errors import FieldError

FRAMEWORKS = {"auto": "DDP, or DeepSpeed with ZeRO", "ddp": "PyTorch DDP", "fsdp2": "PyTorch FSDP2",
              "deepspeed": "DeepSpeed ZeRO", "megatron": "Megatron-LM"}
"""The frameworks calc has rules for, with the names a sentence gives them."""


PROVENANCE = {"ddp": "DDP's buckets measured rank by rank on CPU processes (validation/distributed.py)",
              "fsdp2": "FSDP2's shards and buffers measured rank by rank on CPU processes (validation/distributed.py "
                       "--fsdp2); on a GPU its order of frees is the same code's, not measured",
              "deepspeed": "DeepSpeed's buffers and step derived from its source (calc/frameworks.py), not measured",
              "megatron": "Megatron-LM's precision and buffers derived from its source (calc/frameworks.py), not measured"}
"""How each framework's rules are known, as a table's note says it."""


def framework_of(setup) -> str:
    """The framework that runs the setup: `auto` is DDP for ZeRO stage 0, else DeepSpeed."""
    if setup.framework == "auto":
        return "ddp" if setup.zero == 0 else "deepspeed"
    return setup.framework


def check_framework(setup) -> None:
    """FieldError where the framework does not run this setup."""
    framework = framework_of(setup)
    if framework == "ddp" and setup.zero:
        raise FieldError("zero", "DDP keeps the whole model state on every replica: ZeRO stage 0 with ddp (choose "
                                 "deepspeed to shard, or megatron with zero 1 for its distributed optimizer)")
    if framework == "deepspeed" and not setup.zero:
        raise FieldError("zero", "DeepSpeed's stage 0 is plain data parallelism: choose ZeRO stage 1, 2 or 3 with "
                                 "deepspeed, or ddp")
    if framework == "fsdp2":
        if setup.zero < 2 and setup.dp > 1:
            raise FieldError("zero", "FSDP2 shards parameters, gradients and optimizer state: choose zero 3 (it "
                                     "reshards after forward, its default) or zero 2 (reshard_after_forward=False)")
        if setup.dtype == "bf16":
            raise FieldError("dtype", "calc models FSDP2's bf16 through its MixedPrecisionPolicy (bf16 parameters "
                                      "gathered, fp32 shards), not autocast: choose bf16-master (or fp32) with fsdp2")
        if (setup.tp, setup.pp, setup.cp) != (1, 1, 1):
            raise FieldError("framework", "calc models FSDP2 over data-parallel ranks only so far: choose tp, pp and "
                                          "cp 1 with fsdp2")
        if setup.microbatches > 1:
            raise FieldError("microbatches", "calc models FSDP2 with one micro-batch a step so far (it reduce-scatters "
                                             "every micro-batch's gradients into the shards)")
    if framework == "megatron":
        if setup.zero >= 2:
            raise FieldError("zero", "Megatron-LM shards the optimizer state (its distributed optimizer: zero 1), "
                                     "not gradients or parameters: choose zero 0 or 1 with megatron")
        if setup.dtype == "bf16":
            raise FieldError("dtype", "Megatron-LM trains bf16 weights with fp32 main gradients and parameters, not "
                                      "under PyTorch's autocast: choose bf16-master (or fp32) with megatron")


def gradients_into_held(setup) -> bool:
    """Whether each new gradient goes into memory held through the whole step, then is
    freed: accumulating over micro-batches (into the gradients of the earlier ones), or
    DDP with gradient_as_bucket_view (into its buckets, whose views the gradients become;
    zero_grad(set_to_none=True) drops the views, not the buckets)."""
    return setup.microbatches > 1 or (framework_of(setup) == "ddp" and setup.dp * setup.cp > 1
                                      and setup.ddp_bucket_view)


def gradient_bytes(setup, textbook: int) -> int:
    """Bytes a gradient takes: Megatron-LM keeps bf16 models' gradients in fp32, FSDP2 its
    gradient shards (the reduce dtype)."""
    return 4 if framework_of(setup) in ("megatron", "fsdp2") else textbook


def runs_dtensor(setup) -> bool:
    """Whether tensor parallelism runs through PyTorch's DTensor (ddp, fsdp2:
    torch.distributed.tensor.parallel, as torchtitan plans it) rather than Megatron-LM's
    layers (megatron; deepspeed, as Megatron-DeepSpeed runs it)."""
    return setup.tp > 1 and framework_of(setup) in ("ddp", "fsdp2")


def reduces_into_copies(setup) -> bool:
    """Whether a row-parallel linear's partial sums are all-reduced into a new tensor, the
    partial output alive until it is made: DTensor's all-reduce is functional (torch 2.13,
    torch/distributed/_functional_collectives.py lines 161-182: the
    _c10d_functional.all_reduce op, which reduces a copy of its input), where Megatron-LM
    reduces the output in place (megatron/core/tensor_parallel/mappings.py lines 22-37).
    Under sequence parallelism DTensor reduce-scatters instead, from a copy of the
    partial sums laid out rank by rank (calc.forward and calc.backward walk it:
    Sizes.gathers)."""
    return runs_dtensor(setup) and not setup.sp


def keeps_gathered_inputs(setup) -> bool:
    """Whether, under sequence parallelism, a tensor-parallel rank keeps the all-gathered
    input (all s tokens) of each column-parallel linear for its weight's gradient.

    PyTorch's DTensor (ddp, fsdp2: torch.distributed.tensor.parallel, as torchtitan plans
    it) all-gathers the sequence-sharded input as an autograd operation
    (torch/distributed/tensor/parallel/style.py, torch 2.13: PrepareModuleInput line 542,
    ColwiseParallel line 116), and the linear saves the gathered tensor. Megatron-LM (and
    Megatron-DeepSpeed) saves the rank's shard and gathers it again in backward, into a
    reused global buffer (megatron/core/tensor_parallel/layers.py lines 604 and 623-628).
    Measured for DTensor on CPU processes (validation/distributed.py --tp)."""
    return setup.sp and runs_dtensor(setup)


def keeps_whole_embedding_gradient(setup) -> bool:
    """Whether each tensor-parallel rank keeps its vocabulary-parallel embedding's gradient
    whole (V·d values) though it holds 1/t of the weight: DTensor's embedding backward has
    no strategy that keeps the gradient split by vocabulary (torch 2.13,
    torch/distributed/tensor/_ops/_embedding_ops.py lines 62-97, `embedding_dense_backward_
    strategy`: split by width, or partial), so it runs replicated and the whole gradient is
    accumulated into the shard's .grad (measured: validation/distributed.py --tp)."""
    return runs_dtensor(setup)


def gathers_and_reduces(setup) -> bool:
    """Whether FSDP2 runs the step on more than one rank (calc.fsdp2's buffers apply)."""
    return framework_of(setup) == "fsdp2" and setup.dp > 1


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    """Bytes a ZeRO framework's optimizer step allocates beyond its state, for a rank's
    `partition` parameters with `gradient`-byte gradients; None where torch.optim steps
    (calc.peak.optimizer_temporaries). DeepSpeed: the flattened gradient partition and its
    fp32 copy (none if the gradients are fp32 already); Megatron-LM: none (fused Adam)."""
    framework = framework_of(setup)
    if framework == "megatron":
        return 0
    if framework == "deepspeed" and setup.dp * setup.cp > 1:
        return partition * (gradient + (4 if gradient != 4 else 0))
    return None


def communicators(setup) -> int:
    """The NCCL communicators a GPU of the layout takes part in: one for each way it is
    split, of more than one GPU: its data-parallel replicas (with the context-parallel
    ranks, over which the gradients are reduced too), its tensor-parallel group, its
    pipeline's neighbours, its context-parallel ring."""
    return sum(size > 1 for size in (setup.dp * setup.cp, setup.tp, setup.pp, setup.cp))


def nccl_bytes(setup) -> int:
    """NCCL's memory on a GPU of the layout, on CUDA: `setup.nccl` for each communicator."""
    return setup.nccl * communicators(setup) if setup.device == "cuda" else 0


def buffers(setup, parameters: int, block: int, weight: int, gradient: int, held_gradients: int) -> dict[str, int]:
    """The communication buffers a GPU keeps, by part symbol (calc.peak.PART_SYMBOLS): NCCL's
    memory for its communicators on CUDA (B_n, `setup.nccl` each), DDP's bucket copy of
    the gradients (B_d), DeepSpeed's reduce bucket (B_r) and ZeRO-3's gathered layer and
    prefetch (B_p); `parameters` on the GPU, `block` in one layer."""
    framework, replicated = framework_of(setup), setup.dp * setup.cp > 1
    return {
        "B_n": nccl_bytes(setup),
        "B_d": held_gradients if framework == "ddp" and replicated and not setup.ddp_bucket_view else 0,
        "B_r": min(setup.reduce_bucket, parameters) * gradient if framework == "deepspeed" and replicated else 0,
        "B_p": (block + min(setup.prefetch_bucket, parameters)) * weight
        if framework == "deepspeed" and setup.zero == 3 and replicated else 0,
    }
