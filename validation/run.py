"""Measure the grid of setups calc's autograd accounting is checked on; write or check JSON.

    python -m validation.run            # measure and write validation/results.json
    python -m validation.run --check    # measure again; exit 1 if it differs from the file

Small shapes run twice, on real CPU tensors and on fake tensors, and must agree; the
full-size shapes (the seed's GPT-2 XL-shaped model, GPT-2 XL, Llama 3 8B) run on fake
tensors only. Needs torch (the validation extra), never calc.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

from validation.measure import measure

RESULTS = Path(__file__).with_name("results.json")

_SMALL = dict(vocab=64, context=16, layers=2, d_model=32, heads=4, kv_heads=4, d_ff=48,
              ffn="swiglu", norm="rmsnorm", bias=False, positions="rope", tied=False)
SMALL_SHAPES = {
    "small-cs336": _SMALL,
    "small-gpt2": dict(_SMALL, ffn="gelu", norm="layernorm", bias=True, positions="learned", tied=True, d_ff=128),
    "small-gqa": dict(_SMALL, kv_heads=2),
    "small-mqa-gelu-learned": dict(_SMALL, ffn="gelu", positions="learned", heads=8, kv_heads=1, context=24),
    "small-layernorm-swiglu-tied": dict(_SMALL, norm="layernorm", tied=True, layers=3, d_ff=40),
}
_XL = dict(vocab=50257, context=1024, layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400)
FULL_SHAPES = {
    "cs336-gpt2-xl": dict(_XL, ffn="swiglu", norm="rmsnorm", bias=False, positions="rope", tied=False),
    "gpt2-xl": dict(_XL, ffn="gelu", norm="layernorm", bias=True, positions="learned", tied=True),
    "llama-3-8b": dict(vocab=128256, context=8192, layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336,
                       ffn="swiglu", norm="rmsnorm", bias=False, positions="rope", tied=False),
}
OPTIONS = list(itertools.product(("explicit", "flash"), ("none", "block"), ("fp32", "bf16")))


def cases():
    for name, shape in SMALL_SHAPES.items():
        for batch in (1, 3):
            for attention, checkpoint, dtype in OPTIONS:
                yield name, shape, batch, attention, checkpoint, dtype, False
    for name, shape in FULL_SHAPES.items():
        batches = (1, 2) if name == "cs336-gpt2-xl" else (1,)
        for batch in batches:
            for attention, checkpoint, dtype in OPTIONS:
                yield name, shape, batch, attention, checkpoint, dtype, True


def run_grid(log=sys.stderr) -> dict:
    results = []
    for name, shape, batch, attention, checkpoint, dtype, fake_only in cases():
        measured = measure(shape, batch, attention, checkpoint, dtype, fake=True)
        if not fake_only:
            real = measure(shape, batch, attention, checkpoint, dtype, fake=False)
            if real != measured:
                raise SystemExit(f"{name} {batch} {attention} {checkpoint} {dtype}: real {real} != fake {measured}")
        results.append({
            "name": name, "shape": shape, "batch": batch, "attention": attention, "checkpoint": checkpoint,
            "dtype": dtype, "tensors": "fake" if fake_only else "real and fake", **measured,
        })
        print(f"{name:28} B={batch} {attention:8} {checkpoint:5} {dtype}: {measured['activations']:,} bytes", file=log)
    return {"torch": torch.__version__.split("+")[0], "device": "cpu", "cases": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed results; exit 1 if they differ")
    args = parser.parse_args(argv)
    fresh = run_grid()
    if args.check:
        committed = json.loads(RESULTS.read_text())
        if committed != fresh:
            print(f"validation: fresh measurement differs from {RESULTS.name}; run python -m validation.run", file=sys.stderr)
            return 1
        print(f"validation: {len(fresh['cases'])} measurements match {RESULTS.name} (torch {fresh['torch']})")
        return 0
    RESULTS.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"validation: wrote {len(fresh['cases'])} measurements to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
