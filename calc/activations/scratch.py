"""What autograd keeps for a model written from scratch under the CS336 assignment 1 rules
(implementation "scratch"): no torch.nn.functional, so softmax, cross-entropy, SiLU
(x·sigmoid(x)), Linear and Embedding are written out by hand.

The model is `validation/scratch_model.py`; every row was checked to the byte by
`validation/scratch_probe.py` and `python -m validation.run` (saved-tensor hooks, CPU,
torch 2.13, real and fake tensors). How a line is written decides what it keeps:

- softmax "max" subtracts `x.max(dim, keepdim=True).values`, whose backward keeps the
  int64 indices; "amax" uses `torch.amax`, which keeps its whole input (the masked
  scores) and its output; "max-detached" takes the max of `x.detach()` and keeps nothing;
- either way the softmax keeps exp(x − m) (for the division) and the probabilities (for
  P·V): two h·s² tensors, not one;
- cross-entropy "logsumexp" keeps the logits and the log-sum-exp; "manual" (max, exp,
  sum, log) keeps the int64 max indices, exp and its row sums but not the logits;
  "amax-manual" keeps the logits, the max, exp and the sums;
- picking the target's log-probability with `gather` keeps gather's whole input (s·V),
  with advanced indexing `x[arange(N), targets]` only the int64 arange;
- the boolean causal mask is built in every attention call: s² bytes a layer, once per
  step;
- under CPU bf16 autocast only the matmuls run in bf16; RMSNorm works in fp32 on the fp32
  residual stream, and each matmul casts its own bf16 copy of a norm's output.
- under CUDA bf16 autocast (device "cuda"; derived from PyTorch's op lists and checked on
  fake tensors by validation/cuda_rules.py, not measured on a GPU) exp, log, sum and
  logsumexp run in fp32: exp(x − m), its row sums, the loss's exp and sums and the
  log-sum-exp are kept in fp32, logsumexp keeps an fp32 copy of the logits, and the
  probabilities P·V reads are the bf16 copy of an fp32 quotient.
RoPE takes a slice of its cos and sin buffers (nothing kept); K and V are repeated to all
heads with repeat_interleave before attention.
"""

from __future__ import annotations

from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values

FP32, INDEX, BOOL = 4, 8, 1


def scratch_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """What autograd keeps at the end of the forward pass; rows per sequence."""
    v, a = symbol_values(shape), setup.bytes_per_value
    rows = [row(v, "token-ids", "Token ids (int64), kept by the embedding's indexing", f(("s",)), INDEX,
                stage="embedding", category="inputs")]
    rows += _block_rows(v, shape, setup, a)
    rows += _head_rows(v, shape, setup, a)
    title = f"What autograd keeps: from scratch (softmax {shape.softmax}, cross-entropy {shape.cross_entropy}, {shape.pick})"
    return Table("autograd", title, tuple(rows), batch=setup.batch)


def _norm_rows(v, prefix: str, label: str, layers: bool, stage: str, category: str) -> list:
    L = ("L",) if layers else ()
    return [row(v, f"{prefix}-input", f"{label} input (fp32), kept by x²", f((*L, "s", "d")), FP32, stage=stage,
                category=category),
            row(v, f"{prefix}-rms", f"{label} rsqrt(mean(x²) + ε)", f((*L, "s")), FP32, stage=stage, category=category),
            row(v, f"{prefix}-normalised", f"{label} x·rsqrt, kept by ·g", f((*L, "s", "d")), FP32, stage=stage,
                category=category)]


def _norm_output(v, setup, key: str, name: str, users: int, layers: bool, stage: str, category: str):
    L = ("L",) if layers else ()
    if setup.dtype == "fp32":
        return row(v, key, name, f((*L, "s", "d")), FP32, stage=stage, category=category)
    return row(v, key, f"{name}, one bf16 copy per matmul", f((*L, users, "s", "d")), 2, stage=stage, category=category)


def _reduction_bytes(setup: TrainingSetup) -> int:
    """Bytes per value of what exp, log, sum and logsumexp return: fp32 under CUDA autocast
    (its fp32 lists), else the compute dtype's."""
    return FP32 if setup.device == "cuda" else setup.bytes_per_value


def _block_rows(v, shape: ModelShape, setup: TrainingSetup, a: int) -> list:
    block = lambda key, name, terms, nbytes, category, **extra: row(  # noqa: E731
        v, key, name, f(terms), nbytes, stage="block", category=category, **extra)
    heads, scores = ("L", "s", "d"), ("L", "h", "s", "s")
    rows = _norm_rows(v, "norm1", "Attention norm", True, "block", "norms")
    rows += [_norm_output(v, setup, "qkv-input", "Q/K/V matmul input", 3, True, "block", "attention"),
             block("q", "Q after RoPE, kept by QKᵀ", heads, a, "attention"),
             block("k", "K after RoPE, repeated to all h heads, kept by QKᵀ", heads, a, "attention"),
             block("causal-mask", "Causal mask (bool), built in every layer", ("L", "s", "s"), BOOL, "quadratic",
                   per_step=True)]
    if shape.softmax == "max":
        rows.append(block("softmax-max-indices", "Row max indices (int64), kept by max(dim)", ("L", "h", "s"), INDEX,
                          "attention"))
    elif shape.softmax == "amax":
        rows += [block("masked-scores", "Masked scores, kept by amax", scores, a, "quadratic"),
                 block("softmax-amax", "Row max, kept by amax", ("L", "h", "s"), a, "attention")]
    wide = _reduction_bytes(setup)
    rows += [block("softmax-exp", "exp(x − max), kept by exp and the division", scores, wide, "quadratic"),
             block("softmax-sum", "Row sums of exp, kept by the division", ("L", "h", "s"), wide, "attention"),
             block("probabilities", "Softmax output P, kept by P·V", scores, a, "quadratic"),
             block("v", "V repeated to all h heads, kept by P·V", heads, a, "attention"),
             block("attention-output", "Attention output, heads merged, kept by W_O", heads, a, "attention")]
    rows += _norm_rows(v, "norm2", "Feed-forward norm", True, "block", "norms")
    wide = ("L", "s", "d_ff")
    rows += [_norm_output(v, setup, "ffn-input", "Feed-forward matmul input", 2, True, "block", "ffn"),
             block("w1-output", "W1 x, kept by sigmoid's product", wide, a, "ffn"),
             block("sigmoid-output", "sigmoid(W1 x), kept by sigmoid and the product", wide, a, "ffn"),
             block("silu-output", "W1 x · sigmoid(W1 x), kept by ⊙", wide, a, "ffn"),
             block("w3-output", "W3 x, kept by ⊙", wide, a, "ffn"),
             block("product", "SiLU(W1 x) ⊙ W3 x, kept by W2", wide, a, "ffn")]
    return rows


def _head_rows(v, shape: ModelShape, setup: TrainingSetup, a: int) -> list:
    head = lambda key, name, terms, nbytes, **extra: row(  # noqa: E731
        v, key, name, f(terms), nbytes, stage="head", category="output", **extra)
    rows = _norm_rows(v, "final-norm", "Final norm", False, "head", "output")
    rows += [_norm_output(v, setup, "head-input", "LM head input", 1, False, "head", "output"),
             head("target-ids", "Target ids (int64), kept by the pick", ("s",), INDEX)]
    ce, wide = shape.cross_entropy, _reduction_bytes(setup)
    if ce == "logsumexp":
        rows.append(head("logits", "Logits" + (" (an fp32 copy)" if wide > a else "") + ", kept by logsumexp",
                         ("s", "V"), wide))
    if ce == "amax-manual":
        rows.append(head("logits", "Logits, kept by amax", ("s", "V"), a))
    if ce == "manual":
        rows.append(head("loss-max-indices", "Row max indices (int64), kept by max(dim)", ("s",), INDEX))
    if ce == "amax-manual":
        rows.append(head("loss-amax", "Row max, kept by amax", ("s",), a))
    if ce == "logsumexp":
        rows.append(head("logsumexp", "Log-sum-exp, kept by logsumexp", ("s",), wide))
    else:
        rows += [head("loss-exp", "exp(logits − max), kept by exp", ("s", "V"), wide),
                 head("loss-sum", "Row sums of exp, kept by log", ("s",), wide)]
    if shape.pick == "gather":
        picked = "log-probabilities" if ce == "logsumexp" else "shifted logits"
        rows.append(head("gathered", f"The {picked}, gather's whole input", ("s", "V"), wide if ce == "logsumexp" else a))
    else:
        rows.append(head("pick-arange", "arange(N) (int64), kept by the indexing", ("s",), INDEX))
    return rows
