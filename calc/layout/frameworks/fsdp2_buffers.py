"""PyTorch FSDP2's buffers through a step (`torch.distributed.fsdp.fully_shard`; its rules
are calc.layout.frameworks.fsdp2), wrapped as torchtitan wraps a model: each block one
group, then the whole model, whose own group (the root) holds the embeddings, the final
norm and the head. Read from torch 2.13's
torch/distributed/fsdp/_fully_shard/ and measured on two gloo CPU processes: every phase
of every rank of 64 steps (fp32 and the bf16 policy, resharding after forward or not, one
micro-batch a step or two, two shapes) equals calc's moments to the byte (validation/distributed-fsdp2.json;
tests/engine/test_distributed.py). On a GPU NCCL makes no copy of a reduce-scatter's
input; the rest is the same code.

What each of N ranks holds (bytes; "gathered" is in the parameters' dtype: fp32, or bf16
under MixedPrecisionPolicy(param_dtype=bf16), calc's bf16-master):

- always: its shard of every parameter in fp32 (each parameter's first dimension padded
  to a multiple of N: _fsdp_param.py, `_init_sharded_param`) and the optimizer's state
  over it; after backward, fp32 gradient shards (the policy's reduce dtype). Nothing
  else: 16 bytes a parameter over N with AdamW, also under the bf16 policy.
- a group's gathered parameters from its pre-forward to its post-forward (zero 3:
  `reshard_after_forward=True`) or to its post-backward (zero 2: False), and again from
  its pre-backward (re-gathered under zero 3) to its post-backward. The root's stay
  gathered through the whole forward pass.
- the all-gather buffer, the same bytes: in forward kept until the next group has copied
  its own out (_fsdp_param_group.py, `wait_for_unshard`: `all_gather_state`); in backward
  freed once copied out. Each group's pre-backward gathers the group before it
  (`_backward_prefetch`).
- at a group's post-backward its parameters are freed, the previous group's
  reduce-scatter input is dropped (`reduce_scatter_max_input_buffers`, 1), and a new one
  is made: the group's gradients in the reduce dtype (fp32), whole and padded. The
  gradients are copied in and freed (but the last, which `foreach_reduce`'s loop variable
  holds until it returns); the output, this rank's share, becomes the gradient shards. On
  the CPU, gloo's reduce-scatter works on a copy of the input. The last input is dropped
  when backward ends.
- with gradients accumulated over micro-batches (each micro-batch's backward
  reduce-scatters, FSDP2's default), every later micro-batch holds all the gradient
  shards from its start, and each reduce-scatter's output lives until it has been added
  into them (_fsdp_collectives.py, `foreach_reduce`: `sharded_param.grad._local_tensor +=
  new_sharded_grad`).

calc places each of these at the moments of the step (calc.peak: the moments marked
FSDP2); inside PyTorch's pipeline schedules calc.layout.frameworks.fsdp2_pipeline holds
them instead. It does not split FSDP2 over tensor or context ranks yet.
"""

from __future__ import annotations

from functools import lru_cache

from calc.layout.split import ceil_div
from calc.parameters import parameter_tensors
from calc.setup import TrainingSetup
from calc.shape import ModelShape

REDUCE_BYTES = 4
"""The reduce dtype's bytes: fp32, as torchtitan's policy sets it (and FSDP2's default
for fp32 parameters)."""


@lru_cache(maxsize=256)
def group_values(shape: ModelShape, ranks: int) -> tuple[int, int]:
    """Values of (the root's, one block's) parameters as FSDP2 pads them for `ranks`
    ranks: each tensor's first dimension rounded up to a multiple of the ranks. calc knows
    the first dimension of the embedding, position and head tensors (the vocabulary, the
    positions); every other tensor is padded to a multiple of the ranks in values, which is
    the same where the ranks divide its first dimension (every preset's widths at powers
    of two)."""
    block, root = _registered(shape)
    return padded_values(shape, root, ranks), padded_values(shape, block, ranks)


def padded_values(shape: ModelShape, tensors: tuple[int, ...], ranks: int) -> int:
    """Values of `tensors` (each's values) as FSDP2 pads them for `ranks` ranks (group_values)."""
    rows = {shape.vocab * shape.d_model: shape.vocab}
    if shape.positions == "learned":
        rows.setdefault(shape.max_positions * shape.d_model, shape.max_positions)

    def padded(values: int) -> int:
        if values in rows:
            return ceil_div(rows[values], ranks) * ranks * (values // rows[values])
        return ceil_div(values, ranks) * ranks

    return sum(map(padded, tensors))


def parameter_dtype_bytes(setup: TrainingSetup) -> int:
    """Bytes of a gathered parameter and of its unsharded gradient: bf16 under the policy."""
    return 2 if setup.dtype == "bf16-master" else 4


def sharded_states(shape: ModelShape, setup: TrainingSetup, optimizer_bytes: int) -> tuple[int, int, int]:
    """A rank's bytes of (fp32 parameter shards, fp32 gradient shards, optimizer state)."""
    root, block = group_values(shape, setup.dp)
    shard = (root + shape.layers * block) // setup.dp
    return 4 * shard, REDUCE_BYTES * shard, optimizer_bytes * shard


def buffers_by_moment(shape: ModelShape, setup: TrainingSetup, accumulating: bool = False) -> dict[str, int]:
    """FSDP2's gathered parameters, all-gather buffers, unsharded gradients, reduce-scatter
    inputs and gradient shards alive at each moment calc.peak walks, by the moment's part
    symbol (F_*), in bytes. `accumulating`: in a micro-batch after the step's first, whose
    gradient shards (every one, calc.peak's G_a) are held from the start: the shards the
    micro-batch makes are not counted again, but a reduce-scatter's output while it is
    added in."""
    N, L = setup.dp, shape.layers
    root, block = group_values(shape, N)
    p = parameter_dtype_bytes(setup)
    Ur, Ub = root * p, block * p  # gathered: the root's, a block's (and an all-gather buffer of each)
    Rb, Rr = block * REDUCE_BYTES, root * REDUCE_BYTES  # reduce-scatter inputs
    Sb = Rb // N  # a block's gradient shards (and a reduce-scatter's output)
    made = lambda blocks: 0 if accumulating else blocks * Sb  # noqa: E731  the shards made so far in backward
    resharded = setup.zero == 3
    kept = lambda blocks: 0 if resharded else blocks * Ub  # noqa: E731  zero 2: gathered blocks stay
    previous = Ub if L > 1 else Ur  # the all-gather buffer kept from the group before the last block
    cast = block * p // N if p != 4 else 0  # the bf16 copy of a block's shard, the all-gather's input
    saved_casts = input_casts(shape, setup) if shape.positions == "rope" and setup.checkpoint != "block" else 0
    casts = lambda blocks: blocks * saved_casts  # noqa: E731  saved by the blocks
    working = input_casts(shape, setup) - saved_casts  # the working block's, while it runs, where none is saved
    # (made again as a checkpointed block reruns in backward, kept by its RoPE: the block's walk counts them)
    ahead = 2 * Ub + cast if resharded and L > 1 else Ub if resharded else kept(L)  # a block and the next gathering
    gloo = lambda nbytes: nbytes if setup.device == "cpu" else 0  # noqa: E731  its reduce-scatter copies the input
    return {
        "F_g0": 2 * Ur + 2 * Ub,  # copying the first block out: the root's and its all-gather buffers
        "F_gL": Ur + previous + 2 * Ub + kept(L - 1) + casts(L - 1) + working + saved_casts,
        "F_f": Ur + 2 * Ub + kept(L - 1) + casts(L) + working,
        "F_e": Ur + Ub + kept(L) + casts(L),
        "F_r": (2 * Ur if resharded else Ur + kept(L)) + casts(L),
        "F_h": Ur + (Ub if resharded else kept(L)) + casts(L),
        "F_gb": Ur + ahead + casts(L),
        "F_l": Ur + ahead - cast + casts(L),  # the shard's copy is freed once the all-gather has run
        "F_rl": Ur + (Ub if resharded and L > 1 else kept(L - 1)) + Ub + Rb + casts(L - 1),
        "F_gn": Ur + (2 * Ub if resharded else kept(L - 1)) + Rb + made(1) + casts(L - 1),
        "F_rs": Ur + (Ub if resharded and L > 1 else kept(L - 1)) + Rb + Sb + last_block_tensor(shape) * p
        + gloo(Rb) + casts(L - 1),
        "F_1": Ur + Ub + Rb + made(L - 1) + casts(1),
        "F_rs1": Ur + Rb + Sb + last_block_tensor(shape) * p + gloo(Rb) + made(L - 1),
        "F_rf": Ur + 2 * Ub + Rb + made(L - 1),  # as it starts: the block's parameters and gradients
        "F_z": Ur + Rb + made(L) + root * p,
        "F_rr": root * p + Rr + made(L),
        "F_rsr": Rr + Rr // N + last_root_tensor(shape) * p + gloo(Rr) + made(L),
    }


def last_block_tensor(shape: ModelShape) -> int:
    """Values of a block's last parameter tensor (registration order): foreach_reduce's loop
    variable keeps its unsharded gradient alive until the reduce-scatter has run."""
    block, _ = _registered(shape)
    return block[-1]


def last_root_tensor(shape: ModelShape) -> int:
    """Values of the root's last parameter tensor (registration order), as for a block."""
    _, root = _registered(shape)
    return root[-1]


@lru_cache(maxsize=256)
def _registered(shape: ModelShape) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The values of (one block's, the root's) parameter tensors in registration order: a
    model of two blocks repeats the block where a model of one has it once."""
    one, two = parameter_tensors(shape.replace(layers=1)), parameter_tensors(shape.replace(layers=2))
    n = len(two) - len(one)
    start = next(i for i in range(len(two)) if two[i:i + n] == two[i + n:i + 2 * n])
    return two[start:start + n], one[:start] + one[start + n:]


def input_casts(shape: ModelShape, setup: TrainingSetup) -> int:
    """Bytes of FSDP2's bf16 casts of a block's floating inputs (the policy's
    cast_forward_inputs, in the block's pre-forward): the reference model passes each block
    its fp32 RoPE tables, cos and sin [s, d_h/2]. The block's RoPE multiplies keep them;
    with learned positions, or inside a checkpointed block, they live while the block runs.
    Hugging Face's code passes tables already in the activations' dtype; the from-scratch
    model keeps its own."""
    if setup.dtype != "bf16-master" or shape.implementation != "reference":
        return 0
    return 2 * shape.context * (shape.d_head // 2) * 2
