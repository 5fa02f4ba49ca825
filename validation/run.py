"""Measure the grid of setups calc's autograd accounting is checked on; write or check JSON.

    python -m validation.run                         # measure on the CPU, write validation/results.json
    python -m validation.run --check                 # measure again; exit 1 if it differs from the file
    python -m validation.run --device cuda-derived   # CUDA's rules on CPU fake tensors: results-cuda-derived.json
    python -m validation.run --device cuda           # on a real GPU: results-cuda.json

Three implementations of the model: calc's reference (validation/reference_model.py), a
from-scratch CS336 model (validation/scratch_model.py) in each way of writing softmax,
cross-entropy and the target's pick, and Hugging Face transformers (GPT-2, Llama,
Mistral, Qwen2). Small shapes run twice, on real CPU tensors and on fake tensors, and
must agree; the full-size shapes (every preset) run on fake tensors only. Needs torch and
transformers (the validation extra), never calc.

`--device cuda-derived` runs every case on fake tensors under CUDA's rules
(validation.cuda_rules: autocast's op lists read from the installed torch, the attention
kernels' own meta functions, the math composite mirrored, the fused dropout): a
derivation, which calc's CUDA rows must equal. Every case is derived for an sm90 card
(H100, H200), and the small shapes' fused-attention cases again for sm80 (A100: the flash
kernel) and sm75 (T4: no flash, no bf16 in the memory-efficient kernel). A case whose
rules are not derived is recorded with its reason, and calc must refuse it too.

`--device cuda` measures on a GPU (the small shapes: full sizes do not fit one in fp32);
`--import-gpu FILE` turns a GPU's measurements shared as JSON lines (the first line the
versions; an H200's are the project's shared/measurements/h200-saved-tensors.jsonl) into
results-cuda.json, which calc's tests check.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
import transformers

from validation.measure import measure

RESULTS = {device: Path(__file__).with_name(name) for device, name in (
    ("cpu", "results.json"), ("cuda-derived", "results-cuda-derived.json"), ("cuda", "results-cuda.json"))}
CONFIGS = Path(__file__).with_name("hf_configs")

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
OPTIONS = list(itertools.product(("explicit", "flash"), ("none", "block"), ("fp32", "bf16", "bf16-master")))
"""The reference model's options: attention, checkpointing, precision (bf16-master: the model
cast to bf16, no autocast)."""

# From scratch: every way of writing softmax, cross-entropy and the pick, on a small model.
SCRATCH_VARIANTS = list(itertools.product(("max", "amax", "max-detached"), ("logsumexp", "manual", "amax-manual"),
                                          ("gather", "index")))
SCRATCH = dict(implementation="scratch")

# Hugging Face: the presets' code at full size, and each family small.
_GPT2_HF = dict(ffn="gelu", norm="layernorm", bias=True, positions="learned", tied=True, implementation="hf",
                activation="gelu_new", fused_qkv=True, vocab=50257, context=1024, max_positions=1024)
_LLAMA_HF = dict(implementation="hf")
HF_PRESETS = {
    "gpt2-small": dict(_GPT2_HF, layers=12, d_model=768, heads=12, kv_heads=12, d_ff=3072),
    "gpt2-medium": dict(_GPT2_HF, layers=24, d_model=1024, heads=16, kv_heads=16, d_ff=4096),
    "gpt2-large": dict(_GPT2_HF, layers=36, d_model=1280, heads=20, kv_heads=20, d_ff=5120),
    "gpt2-xl": dict(_GPT2_HF, layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400),
    "cs336-gpt2-xl": dict(_XL, **_LLAMA_HF),
    "llama-2-7b": dict(vocab=32000, context=4096, layers=32, d_model=4096, heads=32, kv_heads=32, d_ff=11008, **_LLAMA_HF),
    "llama-3-8b": dict(vocab=128256, context=8192, layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336,
                       **_LLAMA_HF),
    "mistral-7b": dict(vocab=32000, context=8192, max_positions=32768, layers=32, d_model=4096, heads=32, kv_heads=8,
                       d_ff=14336, sliding_window=4096, **_LLAMA_HF),
}
HF_DROPOUT = {"gpt2-small": 0.1, "gpt2-medium": 0.1, "gpt2-large": 0.1, "gpt2-xl": 0.1}
"""The published configs' dropout where it is not 0 (GPT-2's attn_pdrop, resid_pdrop, embd_pdrop)."""
_SMALL_LLAMA = dict(vocab=64, context=16, layers=2, d_model=32, heads=4, kv_heads=2, d_ff=48, implementation="hf")
HF_SMALL = {
    "small-hf-gpt2": dict(_GPT2_HF, vocab=64, context=16, max_positions=16, layers=2, d_model=32, heads=4, kv_heads=4,
                          d_ff=128),
    "small-hf-llama": _SMALL_LLAMA,
    "small-hf-mistral": dict(_SMALL_LLAMA, sliding_window=8),
    "small-hf-qwen2": dict(_SMALL_LLAMA, qkv_bias=True),
}


def cases():
    """(name, shape, batch, attention, checkpoint, dtype, fake only) for every measurement."""
    for name, shape in SMALL_SHAPES.items():
        for batch in (1, 3):
            for attention, checkpoint, dtype in OPTIONS:
                yield name, shape, batch, attention, checkpoint, dtype, False
    for name, shape in FULL_SHAPES.items():
        batches = (1, 2) if name == "cs336-gpt2-xl" else (1,)
        for batch in batches:
            for attention, checkpoint, dtype in OPTIONS:
                yield name, shape, batch, attention, checkpoint, dtype, True
    for softmax, cross_entropy, pick in SCRATCH_VARIANTS:
        variant = dict(SCRATCH, softmax=softmax, cross_entropy=cross_entropy, pick=pick)
        for batch, dtype in itertools.product((1, 3), ("fp32", "bf16")):
            yield "small-scratch", dict(_SMALL, **variant), batch, "explicit", "none", dtype, False
        if (softmax, cross_entropy, pick) != ("max", "logsumexp", "gather"):  # the default is measured below
            yield "cs336-gpt2-xl-scratch", dict(FULL_SHAPES["cs336-gpt2-xl"], **variant), 1, "explicit", "none", "fp32", True
    for batch, dtype in itertools.product((1, 3), ("fp32", "bf16")):
        yield "small-gqa-scratch", dict(SMALL_SHAPES["small-gqa"], **SCRATCH), batch, "explicit", "none", dtype, False
    for batch, dtype in itertools.product((1, 2), ("fp32", "bf16")):
        yield "cs336-gpt2-xl-scratch", dict(FULL_SHAPES["cs336-gpt2-xl"], **SCRATCH), batch, "explicit", "none", dtype, True
    hf_options = list(itertools.product(("explicit", "flash"), ("none", "block"), ("fp32", "bf16"), (False, True)))
    for name, shape in HF_SMALL.items():
        for batch, (attention, checkpoint, dtype, cache), dropout in itertools.product((1, 3), hf_options, (0.0, 0.1)):
            yield name, dict(shape, dropout=dropout, use_cache=cache), batch, attention, checkpoint, dtype, False
    for name, shape in HF_PRESETS.items():
        for batch, (attention, checkpoint, dtype, cache) in itertools.product((1, 2), hf_options):
            for dropout in sorted({0.0, HF_DROPOUT.get(name, 0.0)}):
                yield f"{name}-hf", dict(shape, dropout=dropout, use_cache=cache), batch, attention, checkpoint, dtype, True


def parameter_counts() -> dict[str, int]:
    """Each published config.json's model, built by transformers on the meta device (no
    memory, no weights): its parameter count."""
    counts = {}
    for path in sorted(CONFIGS.glob("*.json")):
        config = transformers.AutoConfig.for_model(**json.loads(path.read_text()))
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
        counts[path.stem] = sum(p.numel() for p in model.parameters())
    return counts


DERIVED_ARCHES = (90, 80, 75)
"""The cards CUDA's rules are derived for: every case on sm90, the small shapes'
scaled_dot_product_attention cases on the others (nothing else depends on the card)."""


def derived_cases():
    """(case, sm) for `--device cuda-derived`."""
    for sm in DERIVED_ARCHES:
        for case in cases():
            attention, fake_only = case[3], case[6]
            if sm == DERIVED_ARCHES[0] or (attention == "flash" and not fake_only):
                yield case, sm


def run_grid(device: str = "cpu", log=sys.stderr) -> dict:
    """Every case of `cases()` measured on `device` ("cpu", "cuda-derived" or "cuda")."""
    results = []
    start = time.perf_counter()
    grid = derived_cases() if device == "cuda-derived" else ((case, None) for case in cases())
    for (name, shape, batch, attention, checkpoint, dtype, fake_only), sm in grid:
        if device == "cuda" and fake_only:
            continue  # full sizes do not fit one GPU in fp32; the small shapes test the same rules
        case = {"name": name, "shape": shape, "batch": batch, "attention": attention, "checkpoint": checkpoint,
                "dtype": dtype}
        if sm is not None:
            case["arch"] = f"sm{sm}"
        if device == "cpu":
            measured = measure(shape, batch, attention, checkpoint, dtype, fake=True)
            if not fake_only:
                real = measure(shape, batch, attention, checkpoint, dtype, fake=False)
                if real != measured:
                    raise SystemExit(f"{name} {batch} {attention} {checkpoint} {dtype}: real {real} != fake {measured}")
            case["tensors"] = "fake" if fake_only else "real and fake"
        elif device == "cuda-derived":
            try:
                measured = measure(shape, batch, attention, checkpoint, dtype, fake=True, device=device, sm=sm)
            except NotImplementedError as e:
                measured = {"not_derived": str(e)}
            case["tensors"] = "fake, CUDA's rules"
        else:
            measured = measure(shape, batch, attention, checkpoint, dtype, fake=False, device="cuda")
            case["arch"] = "sm{}{}".format(*torch.cuda.get_device_capability())
            case["tensors"] = "real, CUDA"
        results.append({**case, **measured})
        print(f"{time.perf_counter() - start:6.0f} s  {name:28} B={batch} {attention:8} {checkpoint:5} {dtype:11} "
              f"{case.get('arch', ''):5}: "
              f"{measured.get('activations', 'not derived')} bytes", file=log)
    versions = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__, "device": device}
    if device == "cuda":
        versions["gpu"] = torch.cuda.get_device_name()
    if device == "cuda-derived":
        from validation.cuda_rules import check_math_mirror, op_lists

        check_math_mirror()
        versions["autocast_op_lists"] = {key: sorted(ops) for key, ops in op_lists().items()}
    return {**versions, "parameter_counts": parameter_counts(), "cases": results}


def import_gpu_lines(lines: list[str]) -> dict:
    """A GPU's measurements shared as JSON lines (the first holds the versions, each other
    one case as `cases()` names it, with its measured bytes) in results-cuda.json's form.
    The H200 run named no compute capability: an H200 is sm90."""
    meta = json.loads(lines[0])["meta"]
    arch = meta.get("arch", "sm90" if "H200" in meta["gpu"] or "H100" in meta["gpu"] else None)
    assert arch, f"the compute capability of {meta['gpu']} is not recorded"
    keys = ("name", "shape", "batch", "attention", "checkpoint", "dtype")
    cases_ = []
    for line in lines[1:]:
        case = json.loads(line)
        cases_.append({**{k: case[k] for k in keys}, "arch": arch, "tensors": "real, CUDA",
                       **{k: case[k] for k in ("activations", "weight_copies", "saved_parameters")}})
    return {"torch": meta["torch"], "transformers": meta["transformers"], "device": "cuda", "gpu": meta["gpu"],
            "how": meta["how"], "cases": cases_}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed results; exit 1 if they differ")
    parser.add_argument("--import-gpu", metavar="FILE", type=Path,
                        help="write results-cuda.json from a GPU's measurements shared as JSON lines")
    parser.add_argument("--device", choices=tuple(RESULTS), default="cpu",
                        help="cpu (measured), cuda-derived (CUDA's rules on CPU fake tensors) or cuda (a real GPU)")
    args = parser.parse_args(argv)
    if args.import_gpu:
        imported = import_gpu_lines(args.import_gpu.read_text().splitlines())
        RESULTS["cuda"].write_text(json.dumps(imported, indent=1) + "\n")
        print(f"validation: wrote {len(imported['cases'])} cases measured on {imported['gpu']} to {RESULTS['cuda']}")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("validation: --device cuda needs a GPU; torch sees none", file=sys.stderr)
        return 2
    path = RESULTS[args.device]
    fresh = run_grid(args.device)
    if args.check:
        committed = json.loads(path.read_text())
        if committed != fresh:
            print(f"validation: fresh measurement differs from {path.name}; run python -m validation.run "
                  f"--device {args.device}", file=sys.stderr)
            return 1
        print(f"validation: {len(fresh['cases'])} cases match {path.name} "
              f"(torch {fresh['torch']}, transformers {fresh['transformers']}, {args.device})")
        return 0
    path.write_text(json.dumps(fresh, indent=1) + "\n")
    print(f"validation: wrote {len(fresh['cases'])} cases to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
