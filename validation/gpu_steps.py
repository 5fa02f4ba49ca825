"""Whole training steps on a GPU, as torch.cuda's allocator counts them: the check of
calc's allocated peak (calc.allocated), ready for a session that is lent a GPU.

    python -m validation.gpu_steps            # on a GPU: writes results-cuda-steps.json (about a minute on an H200)
    python -m validation.gpu_steps --dry-run  # on the CPU: runs the same steps at a small shape, measures nothing

For the seed's model (the reference implementation, cs336-gpt2-xl) in fp32, bf16 autocast
with SDPA, and bf16 with SDPA and per-block checkpointing, at a few batches: two steps to
reach the steady state (the optimizer's state exists, zero_grad(set_to_none=True)), then a
third in which each phase (forward, backward, the optimizer step) starts with
torch.cuda.reset_peak_memory_stats() and ends with max_memory_allocated() and
max_memory_reserved(). The step's start is also summarised from torch.cuda.memory._snapshot():
the active blocks by size, with the tensors' requested bytes, and the segments. calc's
tests compare each phase with the allocated moments of the same setup when the file is
there. One command, `python -m validation.gpu_check`, runs this and `validation.run
--device cuda` together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from validation.reference_model import Transformer
from validation.run import FULL_SHAPES, SMALL_SHAPES

RESULTS = Path(__file__).with_name("results-cuda-steps.json")
SETUPS = (("fp32", "explicit", "none", (1, 2)), ("bf16", "flash", "none", (1, 4)), ("bf16", "flash", "block", (1, 8)))
"""(dtype, attention, checkpoint, batches) of each measured step."""


def _summarise_snapshot(snapshot: dict) -> dict:
    """The allocator's state at a step's start: its segments' sizes, and its active blocks
    as (block bytes, requested bytes) with how many of each."""
    blocks: dict[tuple[int, int], int] = {}
    segments = []
    for segment in snapshot["segments"]:
        segments.append(segment["total_size"])
        for block in segment["blocks"]:
            if block["state"] == "active_allocated":
                key = (block["size"], block.get("requested_size", block["size"]))
                blocks[key] = blocks.get(key, 0) + 1
    return {"segments": sorted(segments), "active_blocks": sorted([size, requested, n] for (size, requested), n in
                                                                  blocks.items())}


def measure_step(cfg: dict, batch: int, dtype: str, attention: str, checkpoint: str, device: str,
                 snapshot: bool = False) -> dict:
    """Each phase's most allocated and reserved bytes in a steady-state step (on CUDA)."""
    cuda = device == "cuda"
    torch.manual_seed(0)
    with torch.device(device):
        model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)  # PyTorch's default on CUDA: foreach
    ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]), device=device)
    targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16")
    phases: dict[str, dict[str, int]] = {}

    def phase(name: str, run):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        out = run()
        if cuda:
            torch.cuda.synchronize()
            phases[name] = {"allocated": torch.cuda.max_memory_allocated(), "reserved": torch.cuda.max_memory_reserved()}
        return out

    def forward():
        with autocast:
            return model(ids, targets, attention=attention, checkpoint=checkpoint)

    for _ in range(2):
        loss = forward()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    result = {}
    if cuda and snapshot:
        torch.cuda.memory._record_memory_history(max_entries=100_000)
    if cuda:
        result["start"] = {"allocated": torch.cuda.memory_allocated(), "reserved": torch.cuda.memory_reserved()}
        if snapshot:
            result["snapshot"] = _summarise_snapshot(torch.cuda.memory._snapshot())
    loss = phase("forward", forward)
    phase("backward", loss.backward)
    phase("optimizer", lambda: (opt.step(), opt.zero_grad(set_to_none=True)))
    if cuda and snapshot:
        torch.cuda.memory._record_memory_history(enabled=None)
    return {**result, "phases": phases}


def run(device: str, shape: dict, log=sys.stderr) -> dict:
    steps = []
    start = time.perf_counter()
    for dtype, attention, checkpoint, batches in SETUPS:
        for batch in batches:
            first = not steps
            measured = measure_step(shape, batch, dtype, attention, checkpoint, device, snapshot=first)
            steps.append({"batch": batch, "dtype": dtype, "attention": attention, "checkpoint": checkpoint, **measured})
            print(f"{time.perf_counter() - start:6.1f} s  B={batch} {dtype} {attention:8} {checkpoint:5} "
                  f"{measured.get('phases')}", file=log)
            if device == "cuda":
                torch.cuda.empty_cache()
    meta = {"torch": torch.__version__, "device": device}
    if device == "cuda":
        meta |= {"gpu": torch.cuda.get_device_name(), "arch": "sm{}{}".format(*torch.cuda.get_device_capability())}
    return {**meta, "shape": shape, "optimizer": "AdamW, foreach, zero_grad(set_to_none=True)", "steps": steps}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run the steps on the CPU at a small shape, write nothing")
    args = parser.parse_args(argv)
    if args.dry_run:
        run("cpu", SMALL_SHAPES["small-cs336"])
        print("gpu_steps: the steps ran on the CPU (nothing measured)")
        return 0
    if not torch.cuda.is_available():
        print("gpu_steps: needs a GPU; torch sees none (try --dry-run)", file=sys.stderr)
        return 2
    results = run("cuda", FULL_SHAPES["cs336-gpt2-xl"])
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"gpu_steps: wrote {len(results['steps'])} steps to {RESULTS.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
