"""PyTorch FSDP2 inside a pipeline (`framework fsdp2` with pp > 1), as torchtitan runs it:
each stage's module wrapped by fully_shard over the stage's data-parallel ranks (each block
one group, then the stage's module, whose own group, the root, holds the stage's
embeddings or its final norm and head), run by torch.distributed.pipelining's schedules.

Read from torch 2.13 and measured on four gloo CPU processes (two stages, two replicas
each: validation/distributed.py --fsdp2-pp). What differs from FSDP2 alone
(calc.layout.frameworks.fsdp2_buffers):

- every backward of a stage runs without reduce-scattering and without resharding
  (torch/distributed/pipelining/stage.py, `backward_maybe_with_nosync`:
  set_requires_gradient_sync(False), set_reshard_after_backward(False)): after a stage's
  first backward its gradients are held unsharded until every micro-batch is done, in the
  reduce dtype (fp32; under the bf16 policy each group's new bf16 gradients are cast into
  them at its post-backward, _fsdp_param.py `to_accumulated_grad_if_needed`,
  `accumulate_unsharded_grad_if_needed`), and every group it gathered stays gathered;
- a forward pass finds the stage's parameters gathered when a pass before it in the step
  left them so: under zero 2 (`reshard_after_forward=False`) every forward after the
  step's first; under zero 3 a forward right after a backward, which then reshards each
  group as its forward ends. A backward under zero 3 right after a forward gathers again
  what that forward resharded;
- the loss is made after the stage module's forward has ended, so the last stage's root
  is resharded (zero 3) and the all-gather buffer freed before it;
- once the last backward is done, `perform_reduce_grad` runs each group's post-backward,
  the root's first: it reshards the group and reduce-scatters its gradients (an input
  buffer of the group's padded gradients in fp32, gloo's copy of it on the CPU, this
  rank's shard as output), dropping the previous group's input as it goes.
"""

from __future__ import annotations

from functools import lru_cache

from calc.layout.frameworks.fsdp2_buffers import REDUCE_BYTES, _registered, input_casts, padded_values, \
    parameter_dtype_bytes
from calc.layout.schedule import Pass
from calc.layout.split import Stage
from calc.setup import TrainingSetup
from calc.shape import ModelShape


@lru_cache(maxsize=256)
def stage_tensors(shape: ModelShape, has_embedding: bool, has_head: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Values of (the stage root's, one block's) parameter tensors, in registration order:
    the root holds the token (and position) embeddings on the first stage, the final norm
    and head on the last, nothing on a stage between."""
    block, root = _registered(shape)
    embeddings = 1 + (shape.positions == "learned")  # the reference registers embeddings, head, then the blocks
    head = 0 if shape.tied else 1
    first = root[:embeddings]
    # a stage registers its final norm, then its head (tied: the last stage's own copy of the embedding)
    last = root[embeddings + head:] + (shape.vocab * shape.d_model,)
    return (first if has_embedding else ()) + (last if has_head else ()), block


def root_values(shape: ModelShape, here: Stage) -> int:
    """Values of the stage root's parameters, unpadded."""
    return sum(stage_tensors(shape, here.embedding > 0, here.head > 0)[0])


def stage_groups(shape: ModelShape, setup: TrainingSetup, here: Stage) -> tuple[int, int]:
    """Values of (the stage root's, one block's) parameters as FSDP2 pads them."""
    root, block = stage_tensors(shape, here.embedding > 0, here.head > 0)
    return padded_values(shape, root, setup.dp), padded_values(shape, block, setup.dp)


def sharded_stage_states(shape: ModelShape, setup: TrainingSetup, here: Stage, optimizer_bytes: int) \
        -> tuple[int, int, int]:
    """A rank's bytes of its stage's (fp32 parameter shards, fp32 gradient shards, optimizer state)."""
    root, block = stage_groups(shape, setup, here)
    shard = (root + here.layers * block) // setup.dp
    return 4 * shard, REDUCE_BYTES * shard, optimizer_bytes * shard


def gathered_at_start(setup: TrainingSetup, at: Pass) -> bool:
    """Whether the pass finds every parameter of the stage gathered."""
    if at.kind == "forward":
        return at.after_backward if setup.zero == 3 else at.microbatch > 0
    return at.after_backward or setup.zero == 2


def pass_buffers(shape: ModelShape, setup: TrainingSetup, here: Stage, at: Pass | None) -> dict[str, int]:
    """The stage's gathered parameters and FSDP2's buffers at each moment of the pass `at`
    (None: the optimizer step, when there are none), by part symbol, in bytes."""
    if at is None:
        return {}
    root, block = stage_groups(shape, setup, here)
    p, L, N = parameter_dtype_bytes(setup), here.layers, setup.dp
    Ur, Ub = root * p, block * p
    everything = Ur + L * Ub
    resharded = setup.zero == 3
    kept = lambda blocks: 0 if resharded else blocks * Ub  # noqa: E731  zero 2: gathered blocks stay
    gathered = gathered_at_start(setup, at)
    saved_casts = input_casts(shape, setup) if shape.positions == "rope" and setup.checkpoint != "block" else 0
    working = input_casts(shape, setup) - saved_casts  # the working block's, while it runs, where none is saved
    held = at.others * L * saved_casts  # the casts the other micro-batches in flight saved
    casts = lambda blocks: held + blocks * saved_casts  # noqa: E731  and this one's blocks
    if at.kind == "forward":
        last = here.head > 0
        if gathered:
            alive = everything if not resharded else Ur + Ub
            return {"F_g0": everything + casts(0), "F_gL": alive + casts(L - 1) + working + saved_casts,
                    "F_f": alive + casts(L) + working, "F_hf": Ur + kept(L) + casts(L),
                    "F_e": (everything if not resharded else 0 if last else Ur) + casts(L)}
        previous = Ub if L > 1 else Ur
        return {"F_g0": 2 * Ur + 2 * Ub + casts(0),
                "F_gL": Ur + previous + 2 * Ub + kept(L - 1) + casts(L - 1) + working + saved_casts,
                "F_f": Ur + 2 * Ub + kept(L - 1) + casts(L) + working, "F_hf": Ur + Ub + kept(L) + casts(L),
                "F_e": ((Ur if not resharded else 0) + kept(L) if last else Ur + Ub + kept(L)) + casts(L)}
    if at.kind == "backward":
        if gathered:
            alive = dict.fromkeys(("F_r", "F_h", "F_hb", "F_gb", "F_l", "F_1", "F_z"), everything)
        elif here.head:  # the root's output is the logits: its hook gathers the root once their gradient is whole,
            # copies it out (its all-gather buffer beside it), then gathers the last block ahead: the bf16 copy
            # of the block's shard (the all-gather's input, under the bf16 policy) and the buffer
            cast = block * p // N if p != REDUCE_BYTES else 0
            alive = {"F_h": 0, "F_r": max(2 * Ur, Ur + Ub + cast), "F_hb": Ur + Ub, "F_gb": Ur + 2 * Ub,
                     "F_l": Ur + Ub + (Ub if L > 1 else 0), "F_1": everything, "F_z": everything}
        else:  # the root's output is the last block's: the block's hook, registered first, gathers it first
            alive = {"F_h": 0, "F_hb": 0, "F_gb": 2 * Ub, "F_r": 2 * Ur + Ub + (Ub if L > 1 else 0),
                     "F_l": Ur + Ub + (Ub if L > 1 else 0), "F_1": everything, "F_z": everything}
        this = {"F_r": casts(L), "F_h": casts(L), "F_hb": casts(L), "F_gb": casts(L), "F_l": casts(L),
                "F_1": casts(1), "F_z": casts(0)}
        # a stage without the head: its output gradient arrives in a receive buffer (B_q), none made here
        return ({symbol: alive[symbol] + this[symbol] for symbol in alive} | ({} if here.head else {"X_s": 0})
                | cast_buffers(shape, setup, here, at, everything + casts(0)))
    return reduce_buffers(shape, setup, here)


def cast_buffers(shape: ModelShape, setup: TrainingSetup, here: Stage, at: Pass, alive: int) -> dict[str, int]:
    """Under the bf16 policy, what a backward holds as a group's post-backward casts its new
    bf16 gradients into fp32 ones (the step's first backward: `to_accumulated_grad_if_needed`,
    each tensor's fp32 copy made while its bf16 one lives) or adds them into those (later
    backwards): the first block's (F_cb) and, as the backward ends, the root's (F_cr);
    `alive`, the gathered parameters (and casts) then. 0 without the policy."""
    if setup.dtype != "bf16-master":
        return {"F_cb": 0, "F_cr": 0}
    root_tensors, block_tensors = stage_tensors(shape, here.embedding > 0, here.head > 0)
    block, root, L = sum(block_tensors), sum(root_tensors), here.layers
    if at.accumulated:  # added into the fp32 ones G_a counts, the group's bf16 ones alive as it starts
        return {"F_cb": alive + 2 * block, "F_cr": alive + 2 * root}
    cast_block = alive + REDUCE_BYTES * L * block + 2 * block_tensors[-1]
    cast_root = alive + REDUCE_BYTES * (L * block + root) + 2 * root_tensors[-1] if root_tensors else 0
    return {"F_cb": cast_block, "F_cr": cast_root}


def reduce_buffers(shape: ModelShape, setup: TrainingSetup, here: Stage) -> dict[str, int]:
    """What `perform_reduce_grad` holds as it reduce-scatters the root's gradients (F_Rr)
    and the first block's (F_R1), beyond the states: the groups still gathered, the
    gradients not yet reduced (unsharded, fp32), the group's input buffer (and gloo's copy
    of it on the CPU), the shards made, and the group's last gradient, which
    `foreach_reduce`'s loop variable holds until it returns."""
    root_tensors, block_tensors = stage_tensors(shape, here.embedding > 0, here.head > 0)
    root, block = stage_groups(shape, setup, here)
    p, L, N = parameter_dtype_bytes(setup), here.layers, setup.dp
    gloo = 2 if setup.device == "cpu" else 1
    unsharded = REDUCE_BYTES * (sum(root_tensors) + L * sum(block_tensors))
    gathered = p * (root + L * block)
    out = {"F_Rr": 0, "F_R1": 0}
    if root_tensors:
        Rr = REDUCE_BYTES * root
        out["F_Rr"] = (gathered - p * root + unsharded - REDUCE_BYTES * sum(root_tensors)
                       + REDUCE_BYTES * root_tensors[-1] + gloo * Rr + Rr // N)
    Rb = REDUCE_BYTES * block
    out["F_R1"] = (gathered - p * (root + block) + unsharded - REDUCE_BYTES * (sum(root_tensors) + sum(block_tensors))
                   + REDUCE_BYTES * block_tensors[-1] + gloo * Rb + Rb // N + REDUCE_BYTES * root // N)
    return out
