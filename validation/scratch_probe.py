"""Which tensors does autograd keep for backward in the from-scratch (CS336) transformer?

    python -m validation.scratch_probe             # every variant: tables at batch 3, totals at 1 and 3
    python -m validation.scratch_probe --quiet     # totals and formula checks only

For each softmax x cross-entropy x target-pick x mask variant of
`validation.scratch_model.ScratchTransformer`, in fp32 and under CPU bf16 autocast, one
forward pass records every distinct storage that autograd saves
(`torch.autograd.graph.saved_tensors_hooks`, deduplicated by storage, parameter and buffer
storages left out), labelled with the aten op that produced it (a TorchDispatchMode maps
each output storage to its producer; outputs that alias an input are views and keep the
earlier label), the module it was saved in, its shape and dtype. bf16 copies of parameters
made by autocast are reported apart as weight copies.

Every measurement runs on real CPU tensors and again under FakeTensorMode; the two must
agree, and both must equal the closed-form count of `predict()`.

CUDA autocast cannot run here (no GPU), so a third column redoes bf16 autocast in Python
with CUDA's op lists (`AutocastPolicy`); redone with CPU's lists it must reproduce
torch.autocast("cpu") tensor for tensor.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import unittest.mock
import warnings
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

from validation.scratch_model import ScratchTransformer

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

CFG = dict(vocab=64, context=16, layers=2, d_model=32, heads=4, kv_heads=4, d_ff=48)
BATCHES = (1, 3)
# fp32; CPU bf16 autocast; the same redone by AutocastPolicy (a check of that mode); CUDA's lists.
DTYPES = ("fp32", "bf16", "bf16-cpu-emulated", "bf16-cuda")

MAIN_AXES = dict(
    softmax=("max", "amax"),
    cross_entropy=("logsumexp", "manual", "amax-manual"),
    pick=("gather", "index"),
    mask=("where", "masked_fill"),
)
# Written other ways that should not change the softmax / cross-entropy findings.
EXTRA_VARIANTS = [
    dict(softmax="max-detached"),
    dict(rope="index"),
    dict(linear="einsum"),
    dict(cfg=dict(kv_heads=2)),
    dict(cfg=dict(kv_heads=1, heads=8, context=24)),
]


def _key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _tensors(tree):
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class ProducerMode(TorchDispatchMode):
    """Maps the storage of every op output to the name of the op that produced it."""

    def __init__(self, fixed: set[int]):
        super().__init__()
        self.fixed = fixed
        self.producer: dict[int, str] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = _tensors((args, kwargs))
        in_keys = {_key(t) for t in inputs}
        name = str(func).removeprefix("aten.").removesuffix(".default")
        if func is torch.ops.aten._to_copy.default and inputs and _key(inputs[0]) in self.fixed:
            name = "_to_copy (weight copy)"
        for t in _tensors(out):
            key = _key(t)
            if key not in in_keys:
                self.producer[key] = name
        return out


def _fake_init(tensor, *args, **kwargs):
    return tensor


class AutocastPolicy(TorchFunctionMode):
    """bf16 autocast redone in Python for the ops this model calls, with a device's op lists.

    CPU builds cannot run CUDA autocast under autograd (fake CUDA tensors need a CUDA device
    guard to record a graph), so the CUDA column is computed by this mode on CPU tensors.
    The lists are those of torch/include/ATen/autocast_mode.h (AT_FORALL_LOWER_PRECISION_FP,
    AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE), cut down to the ops used here. With
    device="cpu" (only matmuls are lowered) it must reproduce torch.autocast("cpu") exactly,
    which checks the mode itself.
    """

    LOWER = {"matmul", "__matmul__", "einsum", "mm", "bmm"}
    FP32 = {"cuda": {"exp", "log", "rsqrt", "pow", "__pow__", "logsumexp"}, "cpu": set()}
    FP32_OUT = {"cuda": {"sum"}, "cpu": set()}

    def __init__(self, device: str):
        super().__init__()
        self.device = device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        to = torch.bfloat16 if name in self.LOWER else torch.float32 if name in self.FP32[self.device] else None
        if to is not None:
            def cast(t):
                if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64:
                    return t.to(to)
                return t
            args, kwargs = tree_map(cast, args), tree_map(cast, kwargs)
        elif name in self.FP32_OUT[self.device] and args and args[0].is_floating_point() and "dtype" not in kwargs:
            kwargs["dtype"] = torch.float32
        return func(*args, **kwargs)


@dataclass
class Saved:
    module: str
    op: str
    shape: tuple
    dtype: torch.dtype
    nbytes: int
    kind: str  # "activation" or "weight copy"


def record(cfg: dict, batch: int, dtype: str, fake: bool, **opts) -> list[Saved]:
    """Every distinct non-parameter storage saved for backward by one forward pass with loss."""
    mode = contextlib.nullcontext()
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode()
    with mode:
        torch.manual_seed(0)
        with contextlib.ExitStack() as init:
            if fake:  # trunc_normal_ asks whether its samples need redrawing: data that fakes lack
                init.enter_context(unittest.mock.patch.object(torch.nn.init, "trunc_normal_", _fake_init))
            model = ScratchTransformer(cfg, **opts)
        ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        fixed = {_key(p) for p in model.parameters()} | {_key(b) for b in model.buffers()}

        scope: list[str] = [""]

        def enter(name):
            return lambda module, args: scope.append(name)

        def leave(module, args, output):
            scope.pop()

        handles = []
        for name, module in model.named_modules():
            handles += [module.register_forward_pre_hook(enter(name)), module.register_forward_hook(leave)]

        producers = ProducerMode(fixed)
        seen: dict[int, Saved] = {}

        def pack(t: torch.Tensor):
            key = _key(t)
            if key not in fixed and key not in seen:
                op = producers.producer.get(key, "input")
                seen[key] = Saved(scope[-1] or "loss", op, tuple(t.shape), t.dtype, t.untyped_storage().nbytes(),
                                  "weight copy" if op == "_to_copy (weight copy)" else "activation")
            return t

        autocast = {
            "fp32": contextlib.nullcontext(),
            "bf16": torch.autocast("cpu", dtype=torch.bfloat16),
            "bf16-cpu-emulated": AutocastPolicy("cpu"),
            "bf16-cuda": AutocastPolicy("cuda"),
        }[dtype]
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast, producers:
            loss = model(ids, targets)
        for h in handles:
            h.remove()
        if not fake:
            loss.backward()  # the graph we recorded is one backward can run
    return list(seen.values())


def _layer_free(module: str) -> str:
    """'layers.1.attn.q_proj' -> 'attn.q_proj'"""
    parts = module.split(".")
    return ".".join(parts[2:]) if parts[0] == "layers" else module


def show(rows: list[Saved], title: str) -> None:
    """Layer 0 row by row (the other layers save the same shapes), then everything outside the layers."""
    print(f"\n== {title}")
    signature = {}
    for r in rows:
        if r.module.startswith("layers."):
            layer = int(r.module.split(".")[1])
            signature.setdefault(layer, []).append((_layer_free(r.module), r.shape, r.dtype, r.nbytes))
    layers = sorted(signature)
    same = all(signature[i] == signature[layers[0]] for i in layers)
    print(f"   {'module':<28}{'op':<26}{'shape':<18}{'dtype':<16}{'bytes':>8}  kind")
    for r in rows:
        if r.module.startswith("layers.") and not r.module.startswith("layers.0."):
            continue
        print(f"   {r.module:<28}{r.op:<26}{str(list(r.shape)):<18}{str(r.dtype):<16}{r.nbytes:>8}  {r.kind}")
    per_layer = sum(r.nbytes for r in rows if r.module.startswith("layers.0.") and r.kind == "activation")
    print(f"   every layer saves the same: {same}; per layer {per_layer} B activations")
    act = sum(r.nbytes for r in rows if r.kind == "activation")
    wc = sum(r.nbytes for r in rows if r.kind == "weight copy")
    print(f"   total activations {act} B, weight copies {wc} B")


# ---------------------------------------------------------------------------------------------
# Closed form. B batch, s context, d d_model, h heads, k kv_heads, dh = d/h, f d_ff, V vocab,
# L layers; every term is (elements) x (bytes per element).
# ---------------------------------------------------------------------------------------------


def predict(cfg: dict, batch: int, dtype: str, softmax="max", cross_entropy="logsumexp", pick="gather",
            mask="where", rope="slice", linear="matmul") -> dict:
    """Closed form of record()'s totals: bytes of activations and of autocast's weight copies.

    dtype: "fp32"; "bf16" (CPU autocast, where exp, log, sum and logsumexp stay in bf16);
    "bf16-cuda" (CUDA autocast's op lists, where they run in fp32). `mask` and `linear`
    change nothing; kv_heads only the weight copies (the repeated k and v are what is kept).
    """
    B, s, d, h, f, V, L = batch, cfg["context"], cfg["d_model"], cfg["heads"], cfg["d_ff"], cfg["vocab"], cfg["layers"]
    k, dh = cfg.get("kv_heads", h), d // h
    N = B * s
    low = 4 if dtype == "fp32" else 2  # matmul outputs and everything computed from them
    wide = 4 if dtype == "bf16-cuda" else low  # exp, log, logsumexp, sum outputs

    def norm(readers):
        """x, rsqrt(mean x² + eps), x * rsqrt, all fp32; then the output as the matmuls keep it:
        once in fp32, but under autocast one bf16 cast per matmul that reads it."""
        return 4 * (2 * B * s * d + B * s) + (4 * B * s * d if dtype == "fp32" else readers * 2 * B * s * d)

    layer = norm(3) + norm(2)
    layer += 2 * B * s * d * low  # q and k after RoPE (fp32 in fp32, their bf16 casts under autocast)
    layer += s * s  # boolean causal mask, one per attention call
    layer += {  # what the row max keeps: int64 indices; nothing once detached; amax its input and output
        "max": 8 * B * h * s,
        "max-detached": 0,
        "amax": B * h * s * s * low + B * h * s * low,
    }[softmax]
    layer += B * h * s * s * wide + B * h * s * wide  # exp(x - m) and its row sums (kept by the division)
    layer += B * h * s * s * low  # probabilities (bf16 cast of the fp32 quotient under CUDA autocast)
    layer += B * s * d * low  # v (h heads), read by probs @ v
    layer += B * s * d * low  # heads merged back (a copy), read by the output projection
    layer += 5 * B * s * f * low  # w1 x, sigmoid, silu, w3 x, silu * w3 x
    if rope == "index":
        layer += 2 * s * dh * 4  # cos[pos], sin[pos] for q and for k

    head = 8 * N + norm(1)  # token ids kept by the embedding's indexing, final norm
    if cross_entropy == "logsumexp":
        head += N * V * wide + N * wide  # logits (an fp32 copy under CUDA autocast), logsumexp
        picked = N * V * wide  # log-probs
    else:
        head += 8 * N if cross_entropy == "manual" else N * V * low + N * low  # max indices | logits + amax
        head += N * V * wide + N * wide  # exp(shifted), its row sums (kept by log)
        picked = N * V * low  # shifted logits
    head += 8 * N + (picked if pick == "gather" else 8 * N)  # targets; gather keeps its input, indexing an arange

    weights = 0 if dtype == "fp32" else 2 * (L * (2 * d * d + 2 * d * k * dh + 3 * d * f) + V * d)
    return {"activation": L * layer + head, "weight copy": weights}


def variants():
    for values in itertools.product(*MAIN_AXES.values()):
        yield dict(CFG), dict(zip(MAIN_AXES, values))
    for extra in EXTRA_VARIANTS:
        extra = dict(extra)
        cfg = dict(CFG, **extra.pop("cfg", {}))
        yield cfg, extra


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="no tables, totals and checks only")
    args = parser.parse_args(argv)
    failures = 0
    for cfg, opts in variants():
        label = ", ".join(f"{k}={v}" for k, v in opts.items())
        if cfg != CFG:
            label += ", " + ", ".join(f"{k}={v}" for k, v in cfg.items() if CFG.get(k) != v)
        for dtype in DTYPES:
            line = []
            for batch in BATCHES:
                real = record(cfg, batch, dtype, fake=False, **opts)
                fake = record(cfg, batch, dtype, fake=True, **opts)
                if not args.quiet and batch == BATCHES[-1] and dtype != "bf16-cpu-emulated":
                    show(real, f"{label} | {dtype} | batch {batch}")
                totals = {kind: sum(r.nbytes for r in real if r.kind == kind) for kind in ("activation", "weight copy")}
                fake_totals = {kind: sum(r.nbytes for r in fake if r.kind == kind) for kind in totals}
                expected = predict(cfg, batch, dtype.replace("-cpu-emulated", ""), **opts)
                ok = totals == fake_totals == expected
                if dtype == "bf16-cpu-emulated":  # must match torch.autocast("cpu") tensor for tensor
                    autocast_rows = record(cfg, batch, "bf16", fake=False, **opts)
                    ok = ok and [(r.module, r.op, r.shape, r.dtype) for r in real] == [
                        (r.module, r.op, r.shape, r.dtype) for r in autocast_rows]
                failures += not ok
                line.append(f"B={batch}: {totals['activation']}+{totals['weight copy']}wc"
                            f"{'' if ok else f' MISMATCH fake={fake_totals} predicted={expected}'}")
            print(f"TOTAL {label} | {dtype} | " + "; ".join(line))
    print(f"\n{'all agree' if not failures else f'{failures} mismatches'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
