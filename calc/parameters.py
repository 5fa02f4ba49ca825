"""Parameter counts per component, in the order the forward pass meets them."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values

FP32_BYTES = 4


def _norm_terms(shape: ModelShape, layers: bool) -> tuple:
    per = (2, "d") if (shape.norm == "layernorm" and shape.bias) else ("d",)
    return (("L", *per),) if layers else (per,)


def _linear(d_in: tuple, d_out: tuple, bias: bool) -> tuple:
    """Terms of a linear layer in every block: L·d_in·d_out (+ L·d_out for the bias)."""
    terms = [("L", *d_in, *d_out)]
    if bias:
        terms.append(("L", *d_out))
    return tuple(terms)


@lru_cache(maxsize=256)
def parameter_table(shape: ModelShape) -> Table:
    """Every weight matrix and vector, per component; counts are parameters, bytes fp32."""
    v = symbol_values(shape)
    b = shape.bias
    qkv_b = shape.bias or shape.qkv_bias  # Qwen2: biases on Q, K and V alone
    rows = [row(v, "token-embedding", "Token embedding", f(("V", "d")), FP32_BYTES)]
    if shape.positions == "learned":
        rows.append(row(v, "position-embedding", "Position embedding", f(("n_pos", "d")), FP32_BYTES))
    rows += [
        row(v, "norm1", "Attention norm (all blocks)", f(*_norm_terms(shape, True)), FP32_BYTES),
        row(v, "w-q", "Query projection W_Q", f(*_linear(("d",), ("h", "d_h"), qkv_b)), FP32_BYTES),
        row(v, "w-k", "Key projection W_K", f(*_linear(("d",), ("h_kv", "d_h"), qkv_b)), FP32_BYTES),
        row(v, "w-v", "Value projection W_V", f(*_linear(("d",), ("h_kv", "d_h"), qkv_b)), FP32_BYTES),
        row(v, "w-o", "Output projection W_O", f(*_linear(("h", "d_h"), ("d",), b)), FP32_BYTES),
        row(v, "norm2", "Feed-forward norm (all blocks)", f(*_norm_terms(shape, True)), FP32_BYTES),
        row(v, "w-1", "Feed-forward W1", f(*_linear(("d",), ("d_ff",), b)), FP32_BYTES),
    ]
    if shape.ffn == "swiglu":
        rows.append(row(v, "w-3", "Feed-forward W3 (gate's partner)", f(*_linear(("d",), ("d_ff",), b)), FP32_BYTES))
    rows += [
        row(v, "w-2", "Feed-forward W2", f(*_linear(("d_ff",), ("d",), b)), FP32_BYTES),
        row(v, "final-norm", "Final norm", f(*_norm_terms(shape, False)), FP32_BYTES),
    ]
    if not shape.tied:
        rows.append(row(v, "lm-head", "LM head (output embedding)", f(("V", "d")), FP32_BYTES))
    notes = (("The LM head shares the token embedding (tied), so it adds no parameters.",) if shape.tied else ()) + (
        "Bytes at 4 a parameter (fp32), whatever the step's precision: Fixed memory has what the step holds.",)
    return Table("parameters", "Parameters", tuple(rows), count_label="parameters", notes=notes)


def parameter_count(shape: ModelShape) -> int:
    """Total trainable parameters."""
    return parameter_table(shape).total_count


def matrix_parameter_count(shape: ModelShape) -> int:
    """Parameters in the weight matrices that linear layers multiply by (biases, norms and
    the embedding lookup excluded; the LM head's matrix included, tied or not)."""
    d, dh, L = shape.d_model, shape.d_head, shape.layers
    attention = d * shape.heads * dh + 2 * d * shape.kv_heads * dh + shape.heads * dh * d
    ffn = (3 if shape.ffn == "swiglu" else 2) * d * shape.d_ff
    return L * (attention + ffn) + shape.vocab * d


@lru_cache(maxsize=256)
def parameter_tensor_sizes(shape: ModelShape) -> tuple[tuple[int, int], ...]:
    """How many parameter tensors the model has of each size: (values, count) pairs, worked
    out from one and two blocks (a model of any depth in the same time)."""
    one, two = (Counter(parameter_tensors(shape.replace(layers=n))) for n in (1, 2))
    block = two - one
    rest = one - block
    return tuple(sorted((values, rest[values] + block[values] * shape.layers) for values in set(rest) | set(block)
                        if rest[values] + block[values] * shape.layers))


@lru_cache(maxsize=256)
def parameter_tensor_count(shape: ModelShape) -> int:
    """How many parameter tensors the model has (the optimizer keeps a step count for each):
    the tensors of one block times L, and the rest."""
    one, two = (len(parameter_tensors(shape.replace(layers=n))) for n in (1, 2))
    return one + (two - one) * (shape.layers - 1)


@lru_cache(maxsize=256)
def parameter_tensors(shape: ModelShape) -> tuple[int, ...]:
    """The values in each parameter tensor, in the order model.parameters() yields them to
    the optimizer (the implementation's order of registration; a tied head once)."""
    d, dh, d_ff, V, L = shape.d_model, shape.d_head, shape.d_ff, shape.vocab, shape.layers
    q, kv, o = (d * shape.heads * dh, shape.heads * dh), (d * shape.kv_heads * dh, shape.kv_heads * dh), (dh * shape.heads * d, d)
    qkv_bias, bias = shape.bias or shape.qkv_bias, shape.bias
    norm = (d, d) if (shape.norm == "layernorm" and shape.bias) else (d,)

    def linear(weight_and_out, with_bias):
        weight, out = weight_and_out
        return (weight, out) if with_bias else (weight,)

    def ffn(*names):
        shapes = {"w1": (d * d_ff, d_ff), "w3": (d * d_ff, d_ff), "w2": (d_ff * d, d)}
        return tuple(n for name in names for n in linear(shapes[name], bias))

    gated = ("w1", "w3", "w2") if shape.implementation == "hf" else ("w1", "w2", "w3")
    mlp = ffn(*(gated if shape.ffn == "swiglu" else ("w1", "w2")))
    attention = (*linear(q, qkv_bias), *linear(kv, qkv_bias), *linear(kv, qkv_bias), *linear(o, bias))
    embeddings = (V * d,) + ((shape.max_positions * d,) if shape.positions == "learned" else ())
    head = () if shape.tied else (V * d,)
    if shape.implementation == "hf" and shape.norm == "layernorm":  # GPT-2: c_attn makes Q, K and V in one
        block = (*norm, *linear((3 * d * d, 3 * d), True), *linear((d * d, d), True), *norm, *mlp)
        return embeddings + block * L + norm + head
    if shape.implementation == "hf":  # Llama-style: attention, MLP, then the two norms
        return embeddings + (*attention, *mlp, *norm, *norm) * L + norm + head
    if shape.implementation == "scratch":
        return embeddings + (*norm, *attention, *norm, *mlp) * L + norm + head
    return embeddings + head + (*norm, *attention, *norm, *mlp) * L + norm  # the reference registers its own first
