"""Whole training steps on several CPU processes (gloo), rank by rank: what each rank keeps
as PyTorch's data and tensor parallelism run it, phase by phase, for calc's per-GPU moments.

    python -m validation.distributed           # write distributed.json (about a minute)
    python -m validation.distributed --check   # measure again; exit 1 if it differs
    python -m validation.distributed --fsdp2   # write distributed-fsdp2.json (about two and a half minutes)
    python -m validation.distributed --tp      # write distributed-tp.json (about a minute and a half)
    python -m validation.distributed --pp      # write distributed-pp.json (under a minute)
    python -m validation.distributed --fsdp2-pp  # write distributed-fsdp2-pp.json (about a minute)

Each rank runs the reference model (validation/reference_model.py) at a small shape, under

- torch.nn.parallel.DistributedDataParallel, with its buckets as a second copy of the
  gradients or, with gradient_as_bucket_view, as the gradients themselves; or
- FSDP2 (torch.distributed.fsdp.fully_shard) on each block and then on the whole model,
  as torchtitan wraps it: fp32 throughout, or with MixedPrecisionPolicy(param_dtype=bf16,
  reduce_dtype=fp32) (calc's bf16-master: bf16 compute, fp32 shards); resharding after
  forward or not, one micro-batch a step or two (each reduce-scatters its gradients into
  the shards, FSDP2's default; torchtitan accumulates so). The device mesh is made before
  the timeline starts (on a GPU it lives on the host); or
- DTensor tensor parallelism over the ranks (validation/tensor_parallel.py, torchtitan's
  plan), with sequence parallelism or not, the loss under loss_parallel; every rank reads
  the same tokens. Each rank also records what autograd saved in the forward pass
  ("saved": validation.measure's count, a DTensor by its local tensor); or
- torch.distributed.pipelining, one stage a rank (validation/pipeline.py): the 1F1B or
  GPipe schedule over micro-batches, the loss made on the last stage by the schedule's
  loss_fn, no outputs returned (return_outputs=False, as torchtitan steps it); the first
  rank reads the token ids, the last the targets. Each rank records each forward and
  backward of a micro-batch as a phase ("forward-0", "backward-0", ...); or
- both (--fsdp2-pp): four ranks, two pipeline stages, each stage's module wrapped by FSDP2
  (as above) over its two ranks, as torchtitan runs them; the schedule's reduce-scatter
  once every micro-batch is done (`perform_reduce_grad`) is a phase of its own ("reduce").

Micro-batches (the loop as validation/timeline.py writes it: the same tokens, the loss not
divided) share their phases: a phase's figure is its most over all of them.

Every rank runs two steps (the optimizer's state exists; DDP rebuilds its buckets in the
order gradients became ready), then a third, in which a live-tensor timeline
(validation.timeline.LiveBytes, entered before the model is made, so that DDP's buckets,
made in C++, are counted too, and observing FSDP2's in-place storage resizes) records the
most bytes alive in each phase of the step. Needs torch (the validation extra), never calc.
tests/engine/test_distributed.py compares calc with every rank of every case.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.distributed.pipelining.schedules as pipeline_schedules
import torch.multiprocessing as mp
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.parallel import loss as tensor_parallel_loss
from torch.distributed.tensor.parallel import loss_parallel
from torch.nn.parallel import DistributedDataParallel

from validation import pipeline
from validation.measure import is_weight_copy
from validation.record import write_or_check
from validation.reference_model import Transformer
from validation.run import SMALL_SHAPES
from validation.tensor_parallel import TensorParallelTransformer, parallelize
from validation.tensor_parallel import loss as tp_loss
from validation.timeline import LiveBytes, _mark_blocks

RESULTS = Path(__file__).with_name("distributed.json")
FSDP2_RESULTS = Path(__file__).with_name("distributed-fsdp2.json")
TP_RESULTS = Path(__file__).with_name("distributed-tp.json")
PP_RESULTS = Path(__file__).with_name("distributed-pp.json")
FSDP2_PP_RESULTS = Path(__file__).with_name("distributed-fsdp2-pp.json")
RANKS = 2

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrap(model, case: dict, mesh):
    """The model as the case's framework runs it."""
    if case.get("tp", 1) > 1:
        return parallelize(model, mesh, case["sp"])
    if case["framework"] == "ddp":
        return DistributedDataParallel(model, gradient_as_bucket_view=case["bucket_view"])
    policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if case["dtype"] == "bf16-master" else MixedPrecisionPolicy())
    for block in model.blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=case["reshard"], mp_policy=policy)
    return fully_shard(model, mesh=mesh, reshard_after_forward=case["reshard"], mp_policy=policy)


class SavedBytes(contextlib.AbstractContextManager):
    """Within it, the bytes autograd saves for backward on this rank (`total`): each
    storage once, a DTensor's by its local tensor, the parameters, buffers and autocast's
    weight copies apart (as validation.measure counts them on one process)."""

    def __init__(self, model):
        self.fixed = {_local(t).untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
        self.seen: set = set()
        self.total = 0
        self.hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t):
        storage = _local(t).untyped_storage()
        if storage._cdata not in self.seen and storage._cdata not in self.fixed and not is_weight_copy(t):
            self.seen.add(storage._cdata)
            self.total += storage.nbytes()
        return t

    def __enter__(self):
        self.seen.clear()
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self.hooks.__exit__(*exc)


def _seen_inside(mode) -> None:
    """Run loss_parallel's handlers (log-softmax and NLL written out on each rank's share
    of the vocabulary) inside `mode`: a dispatch mode is off while DTensor dispatches, so
    the temporaries those handlers make would be unseen, though allocated."""
    def seen(handler):
        def run(op_call, args, kwargs):
            with mode:
                return handler(op_call, args, kwargs)
        return run
    for op, handler in list(tensor_parallel_loss.customized_loss_ops.items()):
        tensor_parallel_loss.customized_loss_ops[op] = seen(handler)


def _local(t):
    return t._local_tensor if isinstance(t, DTensor) else t


def _optimizer_groups(model) -> list[list]:
    """The parameters in groups fused AdamW can step together: tensor parallelism without
    sequence parallelism leaves the norms' weights plain tensors beside the DTensor shards,
    and a fused step cannot mix them (two fused AdamW steps allocate what one does: nothing)."""
    shards = [p for p in model.parameters() if isinstance(p, DTensor)]
    plain = [p for p in model.parameters() if not isinstance(p, DTensor)]
    return [group for group in (plain, shards) if group]


class _Settled:
    """A collective's work whose wait() also lets gloo's thread drop the tensors it held."""

    def __init__(self, work):
        self.work = work

    def wait(self, *args):
        done = self.work.wait(*args)
        time.sleep(SETTLE_S)
        return done

    def __getattr__(self, name):
        return getattr(self.work, name)


SETTLE_S = 0.005
"""How long a rank waits after each collective: gloo completes it on its own thread, which
releases the input and output tensors a moment after the rank is told it is done; without
the wait, whether they are alive at the next op depends on timing (FSDP2's phases then
differed by a block's unsharded parameters between ranks and runs; with it, two whole
runs were equal). NCCL keeps no such references on the host."""


def _settling(collective):
    def settled(*args, async_op=False, **kwargs):
        work = collective(*args, async_op=async_op, **kwargs)
        if async_op:
            return _Settled(work)
        time.sleep(SETTLE_S)
        return work
    return settled


def _settled_wait(wait_tensor):
    def settled(tensor):
        done = wait_tensor(tensor)
        time.sleep(SETTLE_S)
        return done
    return settled


def _settled_p2p(wait_batch):
    def settled(works):
        wait_batch(works)
        if works:
            time.sleep(SETTLE_S)
    return settled


def _settled_broadcast(broadcast_coalesced):
    def settled(*args, **kwargs):
        broadcast_coalesced(*args, **kwargs)
        time.sleep(SETTLE_S)
    return settled


def _rank(rank: int, port: int, case: dict, out) -> None:
    for name in ("all_gather_single", "reduce_scatter_single", "all_reduce"):
        if hasattr(dist, name):
            setattr(dist, name, _settling(getattr(dist, name)))
    # DDP broadcasts the model's buffers (the rope tables) from rank 0 at each forward, in one
    # flattened tensor (512 bytes for the small shapes) passed to C++ past _settling: once in
    # two clean-clone runs it was still alive as rank 0's forward pass began
    DistributedDataParallel._distributed_broadcast_coalesced = _settled_broadcast(
        DistributedDataParallel._distributed_broadcast_coalesced)
    funcol.wait_tensor = _settled_wait(funcol.wait_tensor)  # DTensor's collectives wait through it
    pipeline_schedules._wait_batch_p2p = _settled_p2p(pipeline_schedules._wait_batch_p2p)  # the schedules' sends
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=case["ranks"])
    if case.get("pp", 1) > 1:
        out.put((rank, _pipeline_phases(rank, case)))
        os._exit(0)
    tensor_parallel = case.get("tp", 1) > 1
    mesh = init_device_mesh("cpu", (case["ranks"],)) if case["framework"] == "fsdp2" or tensor_parallel else None
    cfg = SMALL_SHAPES[case["shape"]]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case["dtype"] == "bf16")
    mode = LiveBytes()
    with mode, mode.observing_resizes():
        torch.manual_seed(0)
        model = (TensorParallelTransformer if tensor_parallel else Transformer)(cfg)
        wrapped = _wrap(model, case, mesh)
        optimizers = [torch.optim.AdamW(group, lr=1e-3, fused=True) for group in _optimizer_groups(model)]
        generator = torch.Generator().manual_seed(0 if tensor_parallel else rank)  # TP ranks share the tokens
        ids = torch.randint(0, cfg["vocab"], (case["batch"], cfg["context"]), generator=generator)
        targets = torch.randint(0, cfg["vocab"], (case["batch"], cfg["context"]), generator=generator)
        names: dict[str, torch.Tensor] = {}
        if tensor_parallel:
            _seen_inside(mode)
            vocabulary_parallel = loss_parallel
            forward = lambda ids, targets: tp_loss(wrapped, ids, targets, case["attention"], case["checkpoint"])  # noqa: E731
        else:
            vocabulary_parallel = contextlib.nullcontext
            forward = lambda ids, targets: wrapped(ids, targets, attention=case["attention"],  # noqa: E731
                                                   checkpoint=case["checkpoint"])

        saved = SavedBytes(model)

        def step():
            for _ in range(case.get("microbatches", 1)):  # gradients accumulated, as the timeline's loop does
                mode.enter("forward")
                with autocast, vocabulary_parallel(), saved:
                    names["loss"] = forward(ids, targets)
                mode.enter("head")
                with vocabulary_parallel():
                    names["loss"].backward()
            mode.enter("optimizer")
            for opt in optimizers:
                opt.step()
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)

        step()
        step()
        gc.collect()  # as torchtitan does: automatic collection off, a collection between steps
        gc.disable()
        hooks = _mark_blocks(model, mode)
        mode.phase_peaks.clear()
        mode.phase = "forward"
        saved.total = 0
        step()
        for hook in hooks:
            hook.remove()
        gc.enable()
    result = dict(mode.phase_peaks)
    if tensor_parallel:
        result["saved"] = saved.total
    out.put((rank, result))  # a SimpleQueue writes before it returns
    # No teardown: gloo's worker threads can wait for ever on a peer that has left, and
    # destroying the process group (or DDP's reducer, at exit) joins them.
    os._exit(0)


def _pipeline_phases(rank: int, case: dict) -> dict[str, int]:
    """The most live bytes of each phase of this rank's steady-state pipeline step: each
    micro-batch's forward (with its loss, on the last stage) and backward, the optimizer."""
    cfg = SMALL_SHAPES[case["shape"]]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case["dtype"] == "bf16")
    stages, microbatches = case["pp"], case["microbatches"]
    replicas = case["ranks"] // stages  # FSDP2 shards each stage over its replicas
    stage, replica = divmod(rank, replicas)
    first, last = stage == 0, stage == stages - 1
    # the meshes are made before the timeline starts (a mesh holds a tensor of its ranks)
    mesh = init_device_mesh("cpu", (stages, replicas), mesh_dim_names=("pp", "dp")) if replicas > 1 else None
    dp_mesh, pp_group = (None, None) if mesh is None else (mesh["dp"], mesh["pp"].get_group())
    mode = LiveBytes()
    with mode, mode.observing_resizes():
        torch.manual_seed(0)
        module = pipeline.StageModule(Transformer(cfg), stage, stages, case["attention"], case["checkpoint"])
        if mesh is not None:
            _wrap(module, case, dp_mesh)
        schedule = pipeline.schedule(module, stage, stages, microbatches, case["schedule"], group=pp_group)
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
        generator = torch.Generator().manual_seed(replica)
        size = (case["batch"] * microbatches, cfg["context"])
        ids = torch.randint(0, cfg["vocab"], size, generator=generator) if first else None
        targets = torch.randint(0, cfg["vocab"], size, generator=generator) if last else None
        _phase_each_chunk(schedule._stage, mode)
        reduce_grad = schedule._stage.perform_reduce_grad

        def perform_reduce_grad(*args, **kwargs):
            mode.enter("reduce")
            return reduce_grad(*args, **kwargs)

        if mesh is not None:  # FSDP2 reduce-scatters the accumulated gradients here
            schedule._stage.perform_reduce_grad = perform_reduce_grad

        def step():
            with autocast:
                schedule.step(*((ids,) if first else ()), target=targets, return_outputs=False)
            mode.enter("optimizer")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()
        step()
        gc.collect()
        gc.disable()
        mode.phase_peaks.clear()
        step()
        gc.enable()
    return dict(mode.phase_peaks)


def _phase_each_chunk(stage, mode: LiveBytes) -> None:
    """Enter a phase as the stage starts each micro-batch's forward or backward."""
    forward, backward = stage.forward_one_chunk, stage.backward_one_chunk

    def forward_one_chunk(chunk, *args, **kwargs):
        mode.enter(f"forward-{chunk}")
        return forward(chunk, *args, **kwargs)

    def backward_one_chunk(chunk, *args, **kwargs):
        mode.enter(f"backward-{chunk}")
        return backward(chunk, *args, **kwargs)

    stage.forward_one_chunk, stage.backward_one_chunk = forward_one_chunk, backward_one_chunk


RANK_IMPORTS = ("torch.distributed.fsdp", "torch.distributed.pipelining", "torch.distributed.tensor.parallel",
                "validation.measure", "validation.pipeline", "validation.record", "validation.reference_model",
                "validation.run", "validation.tensor_parallel", "validation.timeline")
"""What a rank imports, imported once by the server each rank is forked from (a spawned
rank spent about 4 of a case's 5 seconds importing them). This module itself is left to
each rank, which runs it afresh as its main module."""


def measure(case: dict, timeout_s: float = 300) -> list[dict[str, int]]:
    """Each rank's most live bytes in each phase of a steady-state step. A rank that dies
    (its peer then waits in a collective for ever) or a case past `timeout_s` ends the run
    with an error, not a hang."""
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(list(RANK_IMPORTS))
    out = context.SimpleQueue()
    port = _free_port()
    processes = [context.Process(target=_rank, args=(rank, port, case, out)) for rank in range(case["ranks"])]
    for p in processes:
        p.start()
    results, started = {}, time.monotonic()
    while len(results) < len(processes):
        if not out.empty():
            rank, phases = out.get()
            results[rank] = phases
            continue
        failed = [p.exitcode for p in processes if p.exitcode]
        if failed or time.monotonic() - started > timeout_s:
            for p in processes:
                p.kill()
            raise SystemExit(f"a rank {'exited with ' + str(failed[0]) if failed else 'timed out'}: {case}")
        time.sleep(0.05)
    for p in processes:
        p.join(timeout=30)
        if p.is_alive():
            p.kill()
    return [results[rank] for rank in range(case["ranks"])]


def cases(framework: str = "ddp"):
    """On two ranks, at one and three sequences a rank, on the small CS336 shape and
    GPT-2's, with and without flash attention and checkpointing: DDP under each precision,
    bucket copy or view; or FSDP2 in fp32 or bf16 with fp32 shards, resharding after
    forward or not, with one micro-batch a step or two; or ("tp") two tensor-parallel ranks, with sequence parallelism or
    not, on the small CS336 shape and its grouped-query variant (untied, RoPE: the
    shapes validation.tensor_parallel splits); or ("pp") a two-stage pipeline, one stage a
    rank, on those shapes, 2 and 4 micro-batches of one and three sequences, fp32, under
    1F1B and GPipe."""
    if framework == "fsdp2":
        yield from _fsdp2_cases()
        return
    if framework == "fsdp2-pp":
        yield from _fsdp2_pipeline_cases()
        return
    if framework == "pp":
        for shape, batch, microbatches, dtype, (attention, checkpoint), kind in itertools.product(
                ("small-cs336", "small-gqa"), (1, 3), (2, 4), ("fp32",), (("explicit", "none"), ("flash", "block")),
                ("1f1b", "gpipe")):
            yield {"framework": "ddp", "ranks": RANKS, "pp": RANKS, "microbatches": microbatches, "schedule": kind,
                   "shape": shape, "batch": batch, "dtype": dtype, "attention": attention, "checkpoint": checkpoint}
        return
    if framework == "tp":
        for shape, batch, dtype, (attention, checkpoint), sp in itertools.product(
                ("small-cs336", "small-gqa"), (1, 3), ("fp32", "bf16"), (("explicit", "none"), ("flash", "block")),
                (False, True)):
            yield {"framework": "ddp", "ranks": RANKS, "tp": RANKS, "sp": sp, "shape": shape, "batch": batch,
                   "dtype": dtype, "attention": attention, "checkpoint": checkpoint}
        return
    for shape, batch, dtype, (attention, checkpoint), bucket_view in itertools.product(
            ("small-cs336", "small-gpt2"), (1, 3), ("fp32", "bf16"), (("explicit", "none"), ("flash", "block")),
            (False, True)):
        yield {"framework": "ddp", "ranks": RANKS, "shape": shape, "batch": batch, "dtype": dtype,
               "attention": attention, "checkpoint": checkpoint, "bucket_view": bucket_view}


def _fsdp2_cases():
    for microbatches, shape, batch, dtype, (attention, checkpoint), reshard in itertools.product(
            (1, 2), ("small-cs336", "small-gpt2"), (1, 3), ("fp32", "bf16-master"),
            (("explicit", "none"), ("flash", "block")), (True, False)):
        accumulated = {"microbatches": microbatches} if microbatches > 1 else {}
        yield {"framework": "fsdp2", "ranks": RANKS, "shape": shape, "batch": batch, "dtype": dtype,
               "attention": attention, "checkpoint": checkpoint, "reshard": reshard, **accumulated}


def _fsdp2_pipeline_cases():
    """Four ranks: two pipeline stages, each sharded by FSDP2 over two replicas (torchtitan's
    FSDP2 inside a pipeline)."""
    for (shape, batch), dtype, reshard, (kind, microbatches, attention, checkpoint) in itertools.product(
            (("small-cs336", 1), ("small-gqa", 3)), ("fp32", "bf16-master"), (True, False),
            (("1f1b", 4, "explicit", "none"), ("gpipe", 2, "flash", "block"))):
        yield {"framework": "fsdp2", "ranks": 2 * RANKS, "pp": RANKS, "microbatches": microbatches, "schedule": kind,
               "shape": shape, "batch": batch, "dtype": dtype, "attention": attention, "checkpoint": checkpoint,
               "reshard": reshard}


def run(framework: str = "ddp", log=sys.stderr) -> dict:
    steps = []
    for case in cases(framework):
        ranks = measure(case)
        steps.append({**case, "phases": ranks})
        print(f"{case}: {ranks}", file=log)
    return {"torch": torch.__version__.split("+")[0], "device": "cpu", "backend": "gloo", "shapes": SMALL_SHAPES,
            "optimizer": "AdamW, fused", "steps": steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed distributed.json")
    parser.add_argument("--fsdp2", action="store_true", help="measure FSDP2 instead: write distributed-fsdp2.json")
    parser.add_argument("--tp", action="store_true", help="measure DTensor tensor parallelism instead: write "
                                                          "distributed-tp.json")
    parser.add_argument("--pp", action="store_true", help="measure torch.distributed.pipelining instead: write "
                                                          "distributed-pp.json")
    parser.add_argument("--fsdp2-pp", action="store_true", help="measure FSDP2 inside pipelines instead (four "
                                                                "ranks): write distributed-fsdp2-pp.json")
    args = parser.parse_args(argv)
    if args.fsdp2_pp:
        return write_or_check(FSDP2_PP_RESULTS, run("fsdp2-pp"), "validation.distributed", args.check)
    if args.pp:
        return write_or_check(PP_RESULTS, run("pp"), "validation.distributed", args.check)
    if args.tp:
        return write_or_check(TP_RESULTS, run("tp"), "validation.distributed", args.check)
    if args.fsdp2:
        return write_or_check(FSDP2_RESULTS, run("fsdp2"), "validation.distributed", args.check)
    return write_or_check(RESULTS, run(), "validation.distributed", args.check)


if __name__ == "__main__":
    sys.exit(main())
