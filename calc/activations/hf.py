"""What autograd keeps when Hugging Face transformers trains the model (implementation "hf").

Two families of model code, as transformers 5.23 runs them in training mode on the CPU
(torch 2.13), `attention` "explicit" meaning attn_implementation="eager" and "flash"
meaning "sdpa":

- GPT-2 (`GPT2LMHeadModel`): LayerNorm, the fused c_attn projection (Q, K and V in one
  output), a GELU MLP (`gelu_new` by default: the tanh formula written out, which keeps
  five tensors of width d_ff), learned positions, dropout on the embedding, the attention
  probabilities and both residual branches;
- Llama-style (`LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM`): RMSNorm,
  SwiGLU, RoPE (cos and sin computed once per step in fp32), grouped-query attention,
  dropout on the attention probabilities only; Mistral's sliding window, once the
  context reaches it, makes the SDPA path build a mask of its own, kept in every layer.

Every row was found, and is checked to the byte, by `validation/` (saved-tensor hooks,
real and fake tensors): see validation/results.json. Measured facts the rows encode:

- eager attention runs softmax in fp32 (`softmax(dtype=float32)`, and CPU autocast's
  own fp32 softmax for GPT-2), so P is kept in fp32 and, under bf16, again as the bf16
  copy P·V reads;
- SDPA with dropout takes PyTorch's math path on the CPU, which upcasts bf16 to fp32 and
  keeps Q and K scaled, V, P, the dropout mask and the dropped P;
- CPU dropout keeps its mask as a tensor of the input's dtype (the noise), not as bits;
- GPT-2's `use_cache` (on by default, even in training) keeps K and V a second time as
  the cache's copies; Llama-style models keep the same bytes either way;
- the loss shifts the labels with a pad and a slice: one sequence keeps the padded
  (s + 1)-long labels, a batch a contiguous copy of B·s.

On CUDA (device "cuda", calc.cuda; PyTorch's source applied on fake tensors by
validation/cuda_rules.py, equal to what an H200 kept): dropout keeps 1-byte bool masks;
SDPA runs the kernel the card picks (calc.cuda.attention_kernel): on an H100 or H200
cuDNN's, which takes the sliding window's mask (its log-sum-exp unpadded) and dropout;
flash and the memory-efficient kernel drop inside; PyTorch's math composite runs where no
fused kernel takes the call (fp32 grouped-query attention, which the memory-efficient
kernel lacks; bf16 on a card older than sm80), upcasting to fp32 as on the CPU; GPT-2's
gelu_new runs its pow in fp32 under autocast, so its tanh branch is kept in fp32.
"""

from __future__ import annotations

from calc.cuda import MASK_BYTES_ON_CUDA, RNG_STATE_BYTES, attention_kernel, check_kernel, padded_head
from calc.errors import FieldError
from calc.setup import TrainingSetup
from calc.shape import ModelShape, is_gpt2
from calc.table import Table, f, row, symbol_values

FP32, INDEX = 4, 8


def hf_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """What autograd keeps at the end of the forward pass; rows per sequence."""
    if setup.attention == "flash":  # a checkpointed layer runs the same kernel, in forward and again in backward
        _sdpa_kernel(shape, setup, _sliding_mask(shape))
    family = _gpt2_rows if is_gpt2(shape) else _llama_rows
    rows = family(shape, setup)
    title = f"What autograd keeps: Hugging Face {'GPT-2' if is_gpt2(shape) else 'Llama-style'} code"
    return Table("autograd", title, tuple(rows), batch=setup.batch)


def _sdpa_kernel(shape: ModelShape, setup: TrainingSetup, masked: bool = False) -> str:
    """The kernel transformers' SDPA call runs: "cpu-flash" (or "math" with dropout) on the
    CPU; on CUDA the card's "cudnn", "flash", "efficient" or "math" (K and V passed
    unrepeated, with enable_gqa, when there is no mask)."""
    if setup.device == "cpu":
        return "math" if shape.dropout > 0 else "cpu-flash"
    grouped = shape.kv_heads < shape.heads and not masked  # transformers passes enable_gqa when there is no mask
    kernel = attention_kernel(shape.d_head, setup.dtype, setup.arch, masked=masked, grouped=grouped,
                              dropout=shape.dropout, keys=shape.context)
    if kernel == "flash" and padded_head(shape.d_head) != shape.d_head:
        check_kernel("padded flash", (), " (a head size that 8 does not divide)")
    if kernel == "math" and setup.dtype == "fp32" and not grouped:
        check_kernel(kernel, (), " (fp32, a head size that 4 does not divide)")
    return kernel


def _sliding_mask(shape: ModelShape) -> bool:
    """Whether SDPA gets a mask of its own: a sliding window the context reaches (Mistral)."""
    return shape.sliding_window is not None and shape.context >= shape.sliding_window


def _mask_bytes(setup: TrainingSetup, cpu_bytes: int) -> int:
    """Bytes per value of a dropout mask: CUDA's bool, or the CPU's noise tensor."""
    return MASK_BYTES_ON_CUDA if setup.device == "cuda" else cpu_bytes


def _kernel_rows(v, kernel: str) -> list:
    """The log-sum-exp of a fused kernel, and on CUDA the RNG state of every call."""
    rows = [row(v, "logsumexp", "Log-sum-exp per head, rows padded to a multiple of 32 (fp32)" if kernel == "efficient"
                else "Log-sum-exp per head and token (fp32)", f(("L", "h", "s_32" if kernel == "efficient" else "s")),
                FP32, stage="block", category="attention")]
    if kernel in RNG_STATE_BYTES:
        rows.append(row(v, "rng-state", "The RNG's seed and offset, kept by every call", f(("L", RNG_STATE_BYTES[kernel])),
                        1, per_step=True, stage="block", category="attention", note="the same bytes for any batch"))
    return rows


def _norm(v, shape, prefix: str, label: str, layers: bool, stage: str, category: str) -> list:
    """A norm's input (fp32: the residual stream), and RMSNorm's inverse RMS and x·rms or
    LayerNorm's mean and 1/σ."""
    L = ("L",) if layers else ()
    rows = [row(v, f"{prefix}-input", f"{label} input (the fp32 residual stream)", f((*L, "s", "d")), FP32,
                stage=stage, category=category)]
    if shape.norm == "rmsnorm":
        rows += [row(v, f"{prefix}-rms", f"{label} inverse RMS", f((*L, "s")), FP32, stage=stage, category=category),
                 row(v, f"{prefix}-normalised", f"{label} x·rms, kept by ·g", f((*L, "s", "d")), FP32, stage=stage,
                     category=category)]
    else:
        rows.append(row(v, f"{prefix}-stats", f"{label} mean and 1/σ", f((*L, 2, "s")), FP32, stage=stage,
                        category=category))
    return rows


def _norm_output(v, setup, key: str, name: str, users: int, layers: bool, stage: str, category: str):
    """A norm's output as the linear layers after it keep it: the fp32 tensor itself, or
    under autocast one bf16 copy per layer that reads it."""
    L = ("L",) if layers else ()
    if setup.dtype == "fp32":
        return row(v, key, name + (f", shared by {users} projections" if users > 1 else ""), f((*L, "s", "d")), FP32,
                   stage=stage, category=category)
    return row(v, key, f"{name}, one bf16 copy per projection" if users > 1 else f"{name} (its bf16 copy)",
               f((*L, users, "s", "d")), 2, stage=stage, category=category)


def _embedding_rows(v, shape) -> list:
    rows = [row(v, "token-ids", "Token ids (int64), kept by the embedding", f(("s",)), INDEX, stage="embedding",
                category="inputs")]
    if shape.positions == "learned":
        rows.append(row(v, "position-ids", "Position ids (int64), kept by the position embedding", f(("s",)), INDEX,
                        per_step=True, stage="embedding", category="inputs"))
    return rows


def _head_rows(v, shape, setup) -> list:
    rows = _norm(v, shape, "final-norm", "Final norm", False, "head", "output")
    rows += [
        _norm_output(v, setup, "head-input", "LM head input", 1, False, "head", "output"),
        row(v, "log-probs", "Log-probabilities (fp32: the loss upcasts the logits)", f(("s", "V")), FP32, stage="head",
            category="output", note="the logits themselves are not kept"),
        row(v, "target-ids", "Shifted labels (int64), kept by NLL", f(("s",)), INDEX, stage="head", category="output",
            note="one sequence keeps the padded labels, s + 1 values: see the next row"),
        row(v, "target-pad", "The padding label of one sequence (int64), kept only at B = 1", f((1,)), INDEX,
            per_step=True, at_batch_one=True, stage="head", category="output"),
        row(v, "nll-weight", "NLL total weight (fp32 scalar)", f((1,)), FP32, per_step=True, stage="head",
            category="output"),
    ]
    return rows


def _checkpointed(v, shape, setup, mask_kept: bool) -> list:
    """Gradient checkpointing (per decoder layer): each layer keeps its input, and GPT-2's
    eager layers the causal mask they are passed (B·s² fp32)."""
    rows = [row(v, "block-input", "Layer input (fp32), kept by the checkpoint", f(("L", "s", "d")), FP32,
                stage="block", category="inputs", note="everything else in the layer is recomputed in backward")]
    if mask_kept:
        rows.append(row(v, "causal-mask", "Causal mask (fp32), a checkpoint input", f(("s", "s")), FP32,
                        stage="block", category="quadratic", note="one for all layers"))
    return rows


def _gpt2_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    v, a = symbol_values(shape), setup.bytes_per_value
    dropout = shape.dropout > 0
    rows = _embedding_rows(v, shape)
    if dropout:
        rows.append(row(v, "embedding-dropout", "Embedding dropout mask" + (" (bool)" if setup.device == "cuda" else
                                                                          " (fp32 noise)"),
                        f(("s", "d")), _mask_bytes(setup, FP32), stage="embedding", category="inputs"))
    if setup.checkpoint == "block":
        return rows + _checkpointed(v, shape, setup, mask_kept=setup.attention == "explicit") + _head_rows(v, shape, setup)
    block = lambda key, name, terms, nbytes, category, **extra: row(  # noqa: E731
        v, key, name, f(terms), nbytes, stage="block", category=category, **extra)
    rows += _norm(v, shape, "norm1", "Attention norm", True, "block", "norms")
    rows.append(_norm_output(v, setup, "qkv-input", "c_attn input", 1, True, "block", "attention"))
    kernel = _sdpa_kernel(shape, setup) if setup.attention == "flash" else "eager"
    if kernel == "math":  # PyTorch's math composite: on the CPU with dropout, on CUDA where no fused kernel runs
        rows += [block("q", "Q scaled (fp32), math path", ("L", "s", "d"), FP32, "attention"),
                 block("k", "K scaled (fp32), math path", ("L", "s", "d"), FP32, "attention"),
                 block("v", "V, kept by P·V" + (" (its fp32 copy)" if setup.dtype == "bf16" else
                                                " (the cache's copy)" if shape.use_cache else ""), ("L", "s", "d"),
                       FP32, "attention")]
        if setup.dtype == "fp32" and not shape.use_cache:  # one sequence's V is a view of c_attn's output
            rows.append(block("c-attn-rest", "The rest of c_attn's output, kept with V's view at B = 1",
                              ("L", 2, "s", "d"), a, "attention", per_step=True, at_batch_one=True))
        rows.append(block("probabilities", "Softmax output P (fp32)", ("L", "h", "s", "s"), FP32, "quadratic"))
        if dropout:
            rows += [block("attention-dropout", "Attention dropout mask" + (
                           " (bool)" if setup.device == "cuda" else " (fp32 noise)"), ("L", "h", "s", "s"),
                           _mask_bytes(setup, FP32), "quadratic"),
                     block("dropped-probabilities", "P after dropout (fp32), kept by P·V", ("L", "h", "s", "s"), FP32,
                           "quadratic")]
        rows.append(block("attention-output", "Attention output, heads merged, kept by c_proj", ("L", "s", "d"), a,
                          "attention"))
    else:
        rows.append(block("c-attn-output", "c_attn output: Q, K and V in one tensor", ("L", 3, "s", "d"), a,
                          "attention", note="at B = 1 views of it are kept; a batch keeps Q, K and V as copies"))
        if shape.use_cache:  # eager attention on a batch copies the cache's K and V, and keeps only the copies
            one = dict(per_step=True, at_batch_one=True) if setup.attention == "explicit" else {}
            rows.append(block("cache-kv", "K and V again, as the cache's copies (use_cache)"
                              + (", at B = 1" if one else ""), ("L", 2, "s", "d"), a, "attention", **one))
        if setup.attention == "explicit":
            rows.append(block("probabilities", "Softmax output P (fp32)", ("L", "h", "s", "s"), FP32, "quadratic"))
            if dropout:
                rows += [block("attention-dropout", "Attention dropout mask" + (
                               " (bool)" if setup.device == "cuda" else " (noise, as P·V's operand)"),
                               ("L", "h", "s", "s"), _mask_bytes(setup, a), "quadratic"),
                         block("dropped-probabilities", "P after dropout, kept by P·V", ("L", "h", "s", "s"), a,
                               "quadratic")]
            elif setup.dtype == "bf16":
                rows.append(block("probabilities-bf16", "P's bf16 copy, kept by P·V", ("L", "h", "s", "s"), 2,
                                  "quadratic"))
            rows.append(block("attention-output", "Attention output, heads merged, kept by c_proj", ("L", "s", "d"), a,
                              "attention"))
        else:
            rows.append(block("flash-output", "SDPA output, kept by SDPA and by c_proj", ("L", "s", "d"), a, "attention"))
            rows += _kernel_rows(v, kernel)
    residual_mask = " (bool)" if setup.device == "cuda" else " (noise)"
    if dropout:
        rows.append(block("attention-residual-dropout", "Residual dropout mask after c_proj" + residual_mask,
                          ("L", "s", "d"), _mask_bytes(setup, a), "attention"))
    rows += _norm(v, shape, "norm2", "Feed-forward norm", True, "block", "norms")
    rows.append(_norm_output(v, setup, "ffn-input", "c_fc input", 1, True, "block", "ffn"))
    rows += _gelu_rows(v, shape, setup)
    if dropout:
        rows.append(block("ffn-residual-dropout", "Residual dropout mask after the MLP" + residual_mask, ("L", "s", "d"),
                          _mask_bytes(setup, a), "ffn"))
    return rows + _head_rows(v, shape, setup)


def _gelu_rows(v, shape, setup) -> list:
    """The MLP between c_fc and c_proj: gelu_new keeps its input, tanh(…), 0.5·x, 1 + tanh(…)
    and its output; F.gelu (exact or tanh form) its input and output. Under CUDA autocast
    gelu_new's pow runs in fp32: its input is kept as an fp32 copy, the tanh branch is
    fp32, and c_proj keeps a bf16 copy of the fp32 output."""
    a = setup.bytes_per_value
    fp32_branch = shape.activation == "gelu_new" and setup.device == "cuda" and setup.dtype == "bf16"
    wide = ("L", "s", "d_ff")
    block = lambda key, name, nbytes=a: row(v, key, name, f(wide), nbytes, stage="block", category="ffn")  # noqa: E731
    if fp32_branch:
        return [block("w1-output", "c_fc output's fp32 copy, kept by pow (fp32 under CUDA autocast)", FP32),
                block("gelu-tanh", "tanh(√(2/π)(x + 0.044715x³)) (fp32), kept by tanh", FP32),
                block("gelu-half-x", "0.5·x, kept by the product"),
                block("gelu-one-plus-tanh", "1 + tanh(…) (fp32), kept by the product", FP32),
                block("gelu-output", "Activation output's bf16 copy, kept by c_proj")]
    rows = [block("w1-output", "c_fc output, kept by the activation")]
    if shape.activation == "gelu_new":
        rows += [block("gelu-tanh", "tanh(√(2/π)(x + 0.044715x³)), kept by tanh"),
                 block("gelu-half-x", "0.5·x, kept by the product"),
                 block("gelu-one-plus-tanh", "1 + tanh(…), kept by the product")]
    rows.append(block("gelu-output", "Activation output, kept by c_proj"))
    return rows


def _llama_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    v, a = symbol_values(shape), setup.bytes_per_value
    dropout = shape.dropout > 0
    rows = _embedding_rows(v, shape)
    if setup.checkpoint == "block":
        return rows + _checkpointed(v, shape, setup, mask_kept=False) + _head_rows(v, shape, setup)
    block = lambda key, name, terms, nbytes, category, **extra: row(  # noqa: E731
        v, key, name, f(terms), nbytes, stage="block", category=category, **extra)
    heads, kv = ("L", "s", "d"), ("L", "s", "h_kv", "d_h")
    rows += _norm(v, shape, "norm1", "Attention norm", True, "block", "norms")
    rows.append(_norm_output(v, setup, "qkv-input", "Q/K/V projection input", 3, True, "block", "attention"))
    rows.append(row(v, "rope-tables", "RoPE cos and sin (fp32), computed once per step", f((2, "s", "d_h")), FP32,
                    per_step=True, stage="block", category="attention"))
    q = "Q after RoPE" + (" (its bf16 copy)" if setup.dtype == "bf16" else "")
    masked = _sliding_mask(shape)
    kernel = _sdpa_kernel(shape, setup, masked) if setup.attention == "flash" else "eager"
    if kernel in ("eager", "math"):
        math_path = kernel == "math"
        n = FP32 if math_path else a
        rows += [block("q", "Q scaled (fp32), math path" if math_path else q, heads, n, "attention"),
                 block("k", "K repeated to all h heads" + (", scaled (fp32)" if math_path else ""), heads, n,
                       "attention"),
                 block("v", "V repeated to all h heads", heads, n, "attention"),
                 block("probabilities", "Softmax output P (fp32)", ("L", "h", "s", "s"), FP32, "quadratic")]
        if dropout:
            rows.append(block("attention-dropout", "Attention dropout mask" + (
                " (bool)" if setup.device == "cuda" else " (fp32 noise)"), ("L", "h", "s", "s"),
                _mask_bytes(setup, FP32), "quadratic"))
        if dropout and (setup.dtype == "fp32" or math_path):
            rows.append(block("dropped-probabilities", "P after dropout (fp32), kept by P·V", ("L", "h", "s", "s"),
                              FP32, "quadratic"))
        elif setup.dtype == "bf16" and not math_path:
            rows.append(block("probabilities-bf16", "P's bf16 copy" + (" after dropout" if dropout else "")
                              + ", kept by P·V", ("L", "h", "s", "s"), 2, "quadratic"))
        rows.append(block("attention-output", "Attention output, heads merged, kept by o_proj", heads, a, "attention"))
    elif masked:
        # Mistral, once the window is no longer than the context: SDPA with a mask of its own, K and V repeated
        if kernel == "efficient" and shape.context % 16:
            raise FieldError("context", "on CUDA the memory-efficient kernel pads a sliding-window mask to a multiple "
                                        "of 16 columns, which is not derived yet: choose a context that 16 divides")
        rows += [block("q", q, heads, a, "attention"),
                 block("k", "K repeated to all h heads", heads, a, "attention"),
                 block("v", "V repeated to all h heads", heads, a, "attention"),
                 block("sliding-mask", "Sliding-window mask, kept by SDPA in every layer", ("L", "s", "s"), a,
                       "quadratic"),
                 block("flash-output", "SDPA output, kept by SDPA and by o_proj", heads, a, "attention")]
        rows += _kernel_rows(v, kernel)
    else:
        grouped = kernel != "efficient"  # the memory-efficient kernel runs only with as many K/V heads as Q heads
        rows += [block("q", q, heads, a, "attention"),
                 block("k", "K after RoPE, not repeated (enable_gqa)" if grouped else "K after RoPE", kv, a, "attention"),
                 block("v", "V, not repeated (enable_gqa)" if grouped else "V", kv, a, "attention"),
                 block("flash-output", "SDPA output, kept by SDPA and by o_proj", heads, a, "attention")]
        rows += _kernel_rows(v, kernel)
    rows += _norm(v, shape, "norm2", "Feed-forward norm", True, "block", "norms")
    rows.append(_norm_output(v, setup, "ffn-input", "Feed-forward input", 2, True, "block", "ffn"))
    wide = ("L", "s", "d_ff")
    rows += [block("w1-output", "gate_proj output, kept by SiLU", wide, a, "ffn"),
             block("silu-output", "SiLU(gate), kept by ⊙", wide, a, "ffn"),
             block("w3-output", "up_proj output, kept by ⊙", wide, a, "ffn"),
             block("product", "SiLU(gate) ⊙ up, kept by down_proj", wide, a, "ffn")]
    return rows + _head_rows(v, shape, setup)
