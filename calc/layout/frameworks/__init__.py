"""The frameworks that run a layout, and what each keeps beyond the model states'
textbook bytes, read from its source: one module each (ddp, deepspeed, megatron, fsdp2,
with FSDP2's buffers in fsdp2_buffers), the same names in each (LABEL, PROVENANCE,
TENSOR_PARALLEL, PIPELINE, check, state_bytes, gradients_into_buckets, step_temporaries, buffers).
Adding a framework is a module and a line in RULES.

Here, what holds whichever framework runs:

- **Tensor parallelism** runs through PyTorch's DTensor under ddp and fsdp2 (as torchtitan
  plans it) and through Megatron-LM's layers under megatron and deepspeed: the two differ
  in what a rank keeps (`runs_dtensor` and the rules after it). DTensor's is measured on
  CPU processes rank by rank (validation/distributed.py --tp).
- **NCCL** takes `setup.nccl` bytes on a GPU for each communicator of its layout, outside
  PyTorch's allocator (`communicators`): an assumption the reader sets.

`framework auto` (the default) is DDP for ZeRO stage 0 and DeepSpeed for stages 1 to 3.
"""

from __future__ import annotations

from calc.layout.frameworks import ddp, deepspeed, fsdp2, megatron

RULES = {"ddp": ddp, "deepspeed": deepspeed, "megatron": megatron, "fsdp2": fsdp2}
"""Each framework's rules, by the name the framework field gives it."""

FRAMEWORKS = {"auto": "DDP, or DeepSpeed with ZeRO", **{name: rules.LABEL for name, rules in RULES.items()}}
"""The frameworks calc has rules for, with the names a sentence gives them."""

PROVENANCE = {name: rules.PROVENANCE for name, rules in RULES.items()}
"""How each framework's rules are known, as a table's note says it."""


def framework_of(setup) -> str:
    """The framework that runs the setup: `auto` is DDP for ZeRO stage 0, else DeepSpeed."""
    if setup.framework == "auto":
        return "ddp" if setup.zero == 0 else "deepspeed"
    return setup.framework


def rules_of(setup):
    """The module of rules of the framework that runs the setup."""
    return RULES[framework_of(setup)]


def check_framework(setup) -> None:
    """FieldError where the framework does not run this setup."""
    rules_of(setup).check(setup)


def gradients_into_buckets(setup) -> bool:
    """Whether each new gradient is copied into the framework's buckets, then freed (DDP
    with gradient_as_bucket_view)."""
    return rules_of(setup).gradients_into_buckets(setup)


def gradients_into_held(setup) -> bool:
    """Whether each new gradient goes into memory held through the whole step, then is
    freed: accumulating over micro-batches (into the gradients of the earlier ones), or
    into the framework's buckets (DDP with gradient_as_bucket_view)."""
    return setup.microbatches > 1 or gradients_into_buckets(setup)


def state_bytes(setup, weights: int, gradients: int, master: int) -> tuple[int, int, int]:
    """Bytes a parameter of (weights, gradients, master copy) as the framework keeps them,
    from the precision's textbook bytes: Megatron-LM keeps bf16 models' gradients in fp32,
    FSDP2 fp32 shards (the master copy) and fp32 gradient shards."""
    return rules_of(setup).state_bytes(weights, gradients, master)


def runs_dtensor(setup) -> bool:
    """Whether tensor parallelism runs through PyTorch's DTensor (ddp, fsdp2:
    torch.distributed.tensor.parallel, as torchtitan plans it) rather than Megatron-LM's
    layers (megatron; deepspeed, as Megatron-DeepSpeed runs it)."""
    return setup.tp > 1 and rules_of(setup).TENSOR_PARALLEL == "dtensor"


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


def runs_torch_pipeline(setup) -> bool:
    """Whether PyTorch's pipeline schedules run the stages (torch.distributed.pipelining,
    1F1B or GPipe: ddp; calc.layout.schedule), rather than Megatron-LM's (megatron;
    deepspeed, whose pipeline engine keeps the same micro-batches in flight). Interleaved
    stages follow Megatron-LM's counts under every framework (derived)."""
    return setup.pp > 1 and setup.virtual_stages == 1 and rules_of(setup).PIPELINE == "torch"


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


def megatron_sequence_parallel(setup) -> bool:
    """Whether Megatron-LM's layers run sequence parallelism (megatron; deepspeed as
    Megatron-DeepSpeed runs it): the residual stream split by tokens; a column-parallel
    linear gathers its input into one global buffer, reused by every layer in forward and
    backward and kept for the run (Megatron-LM d98e8a6,
    megatron/core/tensor_parallel/layers.py lines 623-628: `get_global_memory_buffer()`),
    and saves its shard; a row-parallel one reduce-scatters its partial sums along the
    sequence (the first dimension: no copy to lay the chunks out) into a new tensor, and
    in backward its gradient is all-gathered into a new one
    (megatron/core/tensor_parallel/mappings.py `_gather_along_first_dim`,
    `_reduce_scatter_along_first_dim`). Derived, not measured."""
    return setup.sp and setup.tp > 1 and not runs_dtensor(setup)


def keeps_whole_embedding_gradient(setup) -> bool:
    """Whether each tensor-parallel rank keeps its vocabulary-parallel embedding's gradient
    whole (V·d values) though it holds 1/t of the weight: DTensor's embedding backward has
    no strategy that keeps the gradient split by vocabulary (torch 2.13,
    torch/distributed/tensor/_ops/_embedding_ops.py lines 62-97, `embedding_dense_backward_
    strategy`: split by width, or partial), so it runs replicated and the whole gradient is
    accumulated into the shard's .grad (measured: validation/distributed.py --tp)."""
    return runs_dtensor(setup)


def gathers_and_reduces(setup) -> bool:
    """Whether FSDP2 runs the step on more than one rank (calc.layout.frameworks.fsdp2_buffers
    applies)."""
    return framework_of(setup) == "fsdp2" and fsdp2.gathers_and_reduces(setup)


def step_temporaries(setup, partition: int, gradient: int) -> int | None:
    """Bytes the framework's optimizer step allocates beyond its state, for a rank's
    `partition` parameters with `gradient`-byte gradients; None where torch.optim steps
    (calc.peak.optimizer_temporaries)."""
    return rules_of(setup).step_temporaries(setup, partition, gradient)


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
    prefetch (B_p), 0 where the framework has none; `parameters` on the GPU, `block` in one
    layer."""
    return {"B_n": nccl_bytes(setup), "B_d": 0, "B_r": 0, "B_p": 0,
            **rules_of(setup).buffers(setup, parameters, block, weight, gradient, held_gradients)}
