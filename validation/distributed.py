"""Whole training steps on several CPU processes (gloo), rank by rank: what each rank keeps
as PyTorch's data parallelism runs it, phase by phase, for calc's per-GPU moments.

    python -m validation.distributed           # write distributed.json (about a minute)
    python -m validation.distributed --check   # measure again; exit 1 if it differs

Each rank runs the reference model (validation/reference_model.py) at a small shape under
torch.nn.parallel.DistributedDataParallel, with its buckets as a second copy of the
gradients or, with gradient_as_bucket_view, as the gradients themselves. Every rank runs
two steps (the optimizer's state exists; DDP rebuilds its buckets in the order gradients
became ready), then a third, in which a live-tensor timeline (validation.timeline.LiveBytes,
entered before the model is made, so that DDP's buckets, made in C++, are counted too)
records the most bytes alive in each phase of the step. Needs torch (the validation
extra), never calc.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import sys
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from validation.record import write_or_check
from validation.reference_model import Transformer
from validation.run import SMALL_SHAPES
from validation.timeline import LiveBytes, _mark_blocks

RESULTS = Path(__file__).with_name("distributed.json")
RANKS = 2

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, port: int, case: dict, out) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=case["ranks"])
    cfg = SMALL_SHAPES[case["shape"]]
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=case["dtype"] == "bf16")
    mode = LiveBytes()
    with mode:
        torch.manual_seed(0)
        model = Transformer(cfg)
        ddp = DistributedDataParallel(model, gradient_as_bucket_view=case["bucket_view"])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        generator = torch.Generator().manual_seed(rank)
        ids = torch.randint(0, cfg["vocab"], (case["batch"], cfg["context"]), generator=generator)
        targets = torch.randint(0, cfg["vocab"], (case["batch"], cfg["context"]), generator=generator)
        names: dict[str, torch.Tensor] = {}

        def step():
            mode.enter("forward")
            with autocast:
                names["loss"] = ddp(ids, targets, attention=case["attention"], checkpoint=case["checkpoint"])
            mode.enter("head")
            names["loss"].backward()
            mode.enter("optimizer")
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()
        step()
        hooks = _mark_blocks(model, mode)
        mode.phase_peaks.clear()
        mode.phase = "forward"
        step()
        for hook in hooks:
            hook.remove()
    out.put((rank, dict(mode.phase_peaks)))
    dist.destroy_process_group()


def measure(case: dict) -> list[dict[str, int]]:
    """Each rank's most live bytes in each phase of a steady-state step."""
    context = mp.get_context("spawn")
    out = context.SimpleQueue()
    port = _free_port()
    processes = [context.Process(target=_ddp_rank, args=(rank, port, case, out)) for rank in range(case["ranks"])]
    for p in processes:
        p.start()
    results = dict(out.get() for _ in processes)
    for p in processes:
        p.join()
        if p.exitcode:
            raise SystemExit(f"rank exited with {p.exitcode}: {case}")
    return [results[rank] for rank in range(case["ranks"])]


def cases():
    """DDP on two ranks: each precision, attention, checkpointing, bucket copy or view, at
    one and three sequences a rank, on the small CS336 shape and GPT-2's."""
    for shape, batch, dtype, (attention, checkpoint), bucket_view in itertools.product(
            ("small-cs336", "small-gpt2"), (1, 3), ("fp32", "bf16"), (("explicit", "none"), ("flash", "block")),
            (False, True)):
        yield {"framework": "ddp", "ranks": RANKS, "shape": shape, "batch": batch, "dtype": dtype,
               "attention": attention, "checkpoint": checkpoint, "bucket_view": bucket_view}


def run(log=sys.stderr) -> dict:
    steps = []
    for case in cases():
        ranks = measure(case)
        steps.append({**case, "phases": ranks})
        print(f"{case}: {ranks}", file=log)
    return {"torch": torch.__version__.split("+")[0], "device": "cpu", "backend": "gloo", "shapes": SMALL_SHAPES,
            "optimizer": "AdamW, fused", "steps": steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed distributed.json")
    args = parser.parse_args(argv)
    return write_or_check(RESULTS, run(), "validation.distributed", args.check)


if __name__ == "__main__":
    sys.exit(main())
