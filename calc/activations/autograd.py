"""Exactly what PyTorch autograd saves for backward in the reference implementation.

The reference is `validation/reference_model.py`: RMSNorm written out as
`x * rsqrt(mean(x²) + eps) * g` (or F.layer_norm), RoPE on interleaved pairs, attention
written out or through scaled_dot_product_attention, SwiGLU or GELU, F.cross_entropy.
Walking its forward pass op by op, each op keeps some tensors; a tensor kept by two ops
(or two views of one tensor) is counted once, where it is first kept. Parameters are
fixed memory, not activations. Every row was checked byte for byte against
`validation/measure.py` (saved-tensor hooks, CPU, torch 2.13): see validation/results.json.

Measured facts the rows encode:
- the residual stream stays fp32 under bf16 autocast (the embedding is not autocast and
  fp32 + bf16 is fp32), so the norms keep fp32 tensors;
- under autocast each linear layer casts its input to bf16 on its own: Q, K and V keep
  three bf16 copies of the same input, W1 and W3 two;
- the raw scores and the scaled, masked scores are not kept: softmax keeps its output
  and masked_fill its (bool) mask;
- grouped-query attention keeps K and V after they are repeated to all h heads;
- CPU autocast runs cross-entropy in fp32: the log-probabilities are fp32 either way;
- a model cast to bf16 (dtype "bf16-master": no autocast, the fp32 master copy in the
  optimizer) keeps every tensor in bf16, the norms' and the loss's included; only the
  fused attention kernels' log-sum-exp stays fp32.

On CUDA (device "cuda", calc.cuda; PyTorch's source, applied on fake tensors by
validation/cuda_rules.py, and equal to what an H200 kept, validation/results-cuda.json):
autocast runs softmax in fp32, so explicit attention keeps P in fp32 and again as the bf16
copy P·V reads; F.cross_entropy's log-softmax runs in the logits' own dtype (bf16 under
autocast) and nll_loss on an fp32 copy of its output, so both are kept; LayerNorm on bf16
weights keeps fp32 statistics. SDPA runs the kernel the card picks (calc.cuda.
attention_kernel): cuDNN's (sm90) and flash's keep Q, K, V, their output and an fp32
log-sum-exp, flash's on Q, K and V padded to 8 features a head; the memory-efficient
kernel pads its log-sum-exp to 32 rows and returns its output in the [B, s, h, d_h] layout
that W_O reads without a copy; each fused call keeps the RNG's seed and offset; the math
composite (bf16 where no fused kernel runs, as on a T4) upcasts Q, K and V to fp32 and
keeps Q and K scaled, V and P in fp32.
"""

from __future__ import annotations

from functools import lru_cache

from calc.cuda import RNG_STATE_BYTES, attention_kernel, check_kernel, padded_head
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values

FP32, INDEX, BOOL = 4, 8, 1


def _stream_bytes(setup: TrainingSetup) -> int:
    """Bytes per value of the residual stream and what the norms and the loss keep: fp32,
    also under autocast (the embedding is not autocast), but bf16 in a model cast to bf16."""
    return 2 if setup.dtype == "bf16-master" else FP32


def _norm_rows(v, shape: ModelShape, setup: TrainingSetup, prefix: str, label: str, layers: bool, stage: str,
               category: str) -> list:
    """What a norm keeps: its input, and the inverse RMS and x·rms (RMSNorm) or the mean
    and 1/σ (F.layer_norm)."""
    L, n = (("L",) if layers else ()), _stream_bytes(setup)
    rows = [row(v, f"{prefix}-input", f"{label} input", f((*L, "s", "d")), n, stage=stage, category=category,
                note="kept by x² and by x·rms" if shape.norm == "rmsnorm" else "kept by layer_norm")]
    if shape.norm == "rmsnorm":
        rows += [
            row(v, f"{prefix}-rms", f"{label} inverse RMS, rsqrt(mean(x²)+ε)", f((*L, "s")), n, stage=stage, category=category,
                note="kept by rsqrt (its output) and by x·rms"),
            row(v, f"{prefix}-normalised", f"{label} x·rms, kept by ·g", f((*L, "s", "d")), n, stage=stage,
                category=category),
        ]
    else:
        stats = layer_norm_stats_bytes(setup)
        rows.append(row(v, f"{prefix}-stats", f"{label} mean and 1/σ" + (" (fp32: CUDA's kernel)" if stats > n else ""),
                        f((*L, 2, "s")), stats, stage=stage, category=category))
    return rows


def layer_norm_stats_bytes(setup: TrainingSetup) -> int:
    """Bytes a value of F.layer_norm's mean and 1/σ: the stream's, but fp32 on CUDA, whose
    kernel keeps them in its accumulation type also for bf16 tensors."""
    return FP32 if setup.device == "cuda" else _stream_bytes(setup)


def _linear_input_row(v, setup, key: str, name: str, users: int, layers: bool, stage: str, category: str):
    """The input kept by `users` linear layers reading the same tensor: one fp32 tensor, or
    under autocast one bf16 copy per layer."""
    L = ("L",) if layers else ()
    if setup.dtype != "bf16" or users == 1:
        return row(v, key, name, f((*L, "s", "d")), setup.bytes_per_value, stage=stage, category=category,
                   note=f"shared by {users} projections" if users > 1 else "")
    return row(v, key, f"{name}, one bf16 copy per projection", f((*L, users, "s", "d")), 2, stage=stage,
               category=category)


@lru_cache(maxsize=256)
def block_rows(shape: ModelShape, setup: TrainingSetup) -> tuple:
    """Rows kept by all L blocks together (each count has the factor L)."""
    v, a = symbol_values(shape), setup.bytes_per_value
    heads = ("L", "s", "h", "d_h")
    rope = " (after RoPE)" if shape.positions == "rope" else ""
    rows = _norm_rows(v, shape, setup, "norm1", "Attention norm", True, "block", "norms")
    rows.append(_linear_input_row(v, setup, "qkv-input", "Q/K/V projection input", 3, True, "block", "attention"))
    if setup.attention == "explicit":
        rows += [
            row(v, "q", f"Q{rope}, kept by QKᵀ", f(heads), a, stage="block", category="attention"),
            row(v, "k", f"K{rope}, repeated to all h heads, kept by QKᵀ", f(heads), a, stage="block", category="attention"),
            row(v, "causal-mask", "Causal mask (bool), kept by masked_fill", f(("s", "s")), BOOL, per_step=True,
                stage="block", category="quadratic", note="one tensor shared by every block and sequence"),
        ]
        if setup.device == "cuda" and setup.dtype == "bf16":
            rows += [
                row(v, "probabilities", "Softmax output P (fp32: CUDA autocast runs softmax in fp32), kept by softmax",
                    f(("L", "h", "s", "s")), FP32, stage="block", category="quadratic",
                    note="the scores QKᵀ/√d_h and the masked scores are not kept"),
                row(v, "probabilities-bf16", "P's bf16 copy, kept by P·V", f(("L", "h", "s", "s")), 2, stage="block",
                    category="quadratic"),
            ]
        else:
            rows.append(row(v, "probabilities", "Softmax output P, kept by softmax and P·V", f(("L", "h", "s", "s")), a,
                            stage="block", category="quadratic", note="the scores QKᵀ/√d_h and the masked scores are not kept"))
        rows.append(row(v, "v", "V repeated to all h heads, kept by P·V", f(heads), a, stage="block", category="attention"))
    else:
        rows += _fused_attention_rows(v, shape, setup, heads, rope)
    if not (setup.attention == "flash" and sdpa_kernel(shape, setup) == "efficient"):
        shared = setup.attention == "flash" and shape.positions == "learned" and sdpa_kernel(shape, setup) != "math" \
            and not kernel_pads(shape, setup)
        rows.append(row(v, "attention-output", "Attention output, heads concatenated, kept by W_O", f(heads), a,
                        stage="block", category="attention",
                        note="the same storage the attention kernel keeps as its output" if shared else ""))
    rows += _norm_rows(v, shape, setup, "norm2", "Feed-forward norm", True, "block", "norms")
    ffn_users = 2 if shape.ffn == "swiglu" else 1
    rows.append(_linear_input_row(v, setup, "ffn-input", "Feed-forward input", ffn_users, True, "block", "ffn"))
    wide = ("L", "s", "d_ff")
    if shape.ffn == "swiglu":
        rows += [
            row(v, "w1-output", "W1 x, kept by SiLU", f(wide), a, stage="block", category="ffn"),
            row(v, "silu-output", "SiLU(W1 x), kept by ⊙", f(wide), a, stage="block", category="ffn"),
            row(v, "w3-output", "W3 x, kept by ⊙", f(wide), a, stage="block", category="ffn"),
            row(v, "product", "SiLU(W1 x) ⊙ W3 x, kept by W2", f(wide), a, stage="block", category="ffn"),
        ]
    else:
        rows += [
            row(v, "w1-output", "W1 x, kept by GELU", f(wide), a, stage="block", category="ffn"),
            row(v, "gelu-output", "GELU(W1 x), kept by W2", f(wide), a, stage="block", category="ffn"),
        ]
    return tuple(rows)


def sdpa_kernel(shape: ModelShape, setup: TrainingSetup) -> str:
    """The attention kernel scaled_dot_product_attention runs: "cpu-flash" on the CPU; on
    CUDA the card's (the reference model repeats K and V itself and passes no mask)."""
    if setup.device == "cpu":
        return "cpu-flash"
    kernel = attention_kernel(shape.d_head, setup.dtype, setup.arch, keys=shape.context)
    if kernel == "math" and setup.dtype == "fp32":
        check_kernel(kernel, (), " (fp32, a head size that 4 does not divide)")
    return kernel


def kernel_pads(shape: ModelShape, setup: TrainingSetup) -> bool:
    """Whether SDPA pads Q, K and V for the flash kernel (a head size 8 does not divide)."""
    return setup.attention == "flash" and sdpa_kernel(shape, setup) == "flash" and padded_head(shape.d_head) != shape.d_head


KERNEL_NAMES = {"cpu-flash": "flash attention", "flash": "the flash kernel", "cudnn": "cuDNN's kernel",
                "efficient": "the memory-efficient kernel", "math": "the math kernel"}


def _fused_attention_rows(v, shape: ModelShape, setup: TrainingSetup, heads: tuple, rope: str) -> list:
    """What scaled_dot_product_attention's kernel keeps: Q, K, V, its output, an fp32
    log-sum-exp (and on CUDA the RNG state); the math composite its fp32 Q, K, V and P."""
    a, kernel = setup.bytes_per_value, sdpa_kernel(shape, setup)
    name = KERNEL_NAMES[kernel]
    if kernel == "math":
        return [
            row(v, "q", f"Q{rope} (fp32), scaled by the square root of the scale, kept by QKᵀ in {name}", f(heads),
                FP32, stage="block", category="attention",
                note="no fused kernel runs here: PyTorch's composite upcasts Q, K and V to fp32"),
            row(v, "k", f"K{rope}, repeated to all h heads (fp32), scaled likewise", f(heads), FP32, stage="block",
                category="attention"),
            row(v, "v", "V repeated to all h heads, its fp32 copy, kept by P·V", f(heads), FP32, stage="block",
                category="attention"),
            row(v, "probabilities", "Softmax output P (fp32), kept by softmax and P·V", f(("L", "h", "s", "s")), FP32,
                stage="block", category="quadratic"),
        ]
    if kernel_pads(shape, setup):
        padded = ("L", "s", "h", "d_h8")
        return [
            row(v, "q", f"Q{rope}, padded to a multiple of 8 features a head, kept by {name}", f(padded), a,
                stage="block", category="attention", note="SDPA pads Q, K and V for the flash kernel"),
            row(v, "k", f"K{rope}, repeated to all h heads, padded", f(padded), a, stage="block", category="attention"),
            row(v, "v", "V repeated to all h heads, padded", f(padded), a, stage="block", category="attention"),
            row(v, "logsumexp", "Log-sum-exp per head and token (fp32)", f(("L", "h", "s")), FP32, stage="block",
                category="attention"),
            row(v, "flash-output", f"Attention output, padded, kept by {name}", f(padded), a, stage="block",
                category="attention", note="its slice back to d_h features is copied for W_O"),
            row(v, "rng-state", "The RNG's seed and offset, kept by every call", f(("L", RNG_STATE_BYTES[kernel])), 1,
                per_step=True, stage="block", category="attention", note="the same bytes for any batch"),
        ]
    rows = [
        row(v, "q", f"Q{rope}, kept by {name}", f(heads), a, stage="block", category="attention"),
        row(v, "k", f"K{rope}, repeated to all h heads", f(heads), a, stage="block", category="attention"),
        row(v, "v", "V repeated to all h heads", f(heads), a, stage="block", category="attention"),
    ]
    if kernel == "efficient":
        rows += [
            row(v, "logsumexp", "Log-sum-exp per head, rows padded to a multiple of 32 (fp32)", f(("L", "h", "s_32")),
                FP32, stage="block", category="attention"),
            row(v, "attention-output", "Attention output, kept by the kernel and by W_O", f(heads), a, stage="block",
                category="attention", note="made in the [B, s, h, d_h] layout, so W_O reads it without a copy"),
        ]
    else:
        rows.append(row(v, "logsumexp", "Log-sum-exp per head and token (fp32)", f(("L", "h", "s")), FP32,
                        stage="block", category="attention"))
        if shape.positions == "rope":
            rows.append(row(v, "flash-output", f"Attention output in head layout, kept by {name}", f(heads), a,
                            stage="block", category="attention",
                            note="Q is a fresh [B,h,s,d_h] tensor after RoPE, so the output is too"))
    if kernel != "cpu-flash":
        rows.append(row(v, "rng-state", "The RNG's seed and offset, kept by every call", f(("L", RNG_STATE_BYTES[kernel])),
                        1, per_step=True, stage="block", category="attention", note="the same bytes for any batch"))
    return rows


def embedding_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    v = symbol_values(shape)
    rows = [row(v, "token-ids", "Token ids (int64), kept by the embedding lookup", f(("s",)), INDEX, stage="embedding", category="inputs")]
    if shape.positions == "learned":
        rows.append(row(v, "position-ids", "Position ids (int64), kept by the position lookup", f(("s",)), INDEX,
                        per_step=True, stage="embedding", category="inputs"))
    return rows


def head_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    v = symbol_values(shape)
    rows = _norm_rows(v, shape, setup, "final-norm", "Final norm", False, "head", "output")
    n = _stream_bytes(setup)
    precision = "bf16" if n == 2 else "fp32"
    rows.append(row(v, "head-input", "LM head input" + (" (its bf16 copy)" if setup.dtype == "bf16" else ""),
                    f(("s", "d")), setup.bytes_per_value, stage="head", category="output"))
    if bf16_log_softmax(setup):
        rows += [
            row(v, "log-probs", "Log-probabilities (bf16: F.cross_entropy passes the logits' dtype to log-softmax), "
                "kept by log-softmax", f(("s", "V")), 2, stage="head", category="output",
                note="the logits themselves are not kept"),
            row(v, "log-probs-fp32", "Their fp32 copy (nll_loss runs in fp32 under CUDA autocast), kept by NLL",
                f(("s", "V")), FP32, stage="head", category="output"),
        ]
    else:
        rows.append(row(v, "log-probs", f"Log-probabilities ({precision}), kept by log-softmax and NLL", f(("s", "V")), n,
                        stage="head", category="output", note="the logits themselves are not kept"))
    rows += [
        row(v, "target-ids", "Target ids (int64), kept by NLL", f(("s",)), INDEX, stage="head", category="output"),
        row(v, "nll-weight", f"NLL total weight ({precision} scalar)", f((1,)), n, per_step=True, stage="head", category="output"),
    ]
    return rows


def bf16_log_softmax(setup: TrainingSetup) -> bool:
    """Whether F.cross_entropy keeps bf16 log-probabilities and an fp32 copy of them: under
    CUDA's bf16 autocast (log_softmax is given the logits' dtype; nll_loss runs in fp32)."""
    return setup.device == "cuda" and setup.dtype == "bf16"


def checkpointed_block_rows(shape: ModelShape, setup: TrainingSetup) -> list:
    """Under per-block checkpointing the blocks keep only their inputs (and the shared mask)."""
    v = symbol_values(shape)
    rows = [row(v, "block-input", "Block input, kept by the checkpoint", f(("L", "s", "d")), _stream_bytes(setup), stage="block", category="inputs",
                note="everything else in the block is recomputed in backward")]
    if setup.attention == "explicit":
        rows.append(row(v, "causal-mask", "Causal mask (bool), a checkpoint input", f(("s", "s")), BOOL,
                        per_step=True, stage="block", category="quadratic"))
    return rows


def autograd_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """What autograd keeps at the end of the forward pass; rows per batch element."""
    if setup.attention == "flash":
        sdpa_kernel(shape, setup)  # a checkpointed block runs the same kernel, in forward and again in backward
    blocks = checkpointed_block_rows(shape, setup) if setup.checkpoint == "block" else block_rows(shape, setup)
    rows = [*embedding_rows(shape, setup), *blocks, *head_rows(shape, setup)]
    return Table("autograd", "What autograd keeps: the reference implementation", tuple(rows), batch=setup.batch)
