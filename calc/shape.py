"""ModelShape: the architecture whose memory we count, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass, fields

from calc.errors import FieldError, echo

FFN_KINDS = ("swiglu", "gelu")
NORM_KINDS = ("rmsnorm", "layernorm")
POSITION_KINDS = ("rope", "learned")
IMPLEMENTATIONS = ("reference", "scratch", "hf")
IMPLEMENTATION_NAMES = {"reference": "reference", "scratch": "from-scratch (CS336)", "hf": "Hugging Face"}
"""Each implementation as a sentence names it."""
ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "gelu_new")
SOFTMAXES = ("max", "amax", "max-detached")
CROSS_ENTROPIES = ("logsumexp", "manual", "amax-manual")
PICKS = ("gather", "index")
CHOICES = {"ffn": FFN_KINDS, "norm": NORM_KINDS, "positions": POSITION_KINDS, "implementation": IMPLEMENTATIONS,
           "activation": ACTIVATIONS, "softmax": SOFTMAXES, "cross_entropy": CROSS_ENTROPIES, "pick": PICKS}
"""The allowed values of each of the shape's text fields."""

# A sanity ceiling on every size: far above any real model, low enough that a typo such
# as an extra six zeros is caught at the input rather than rendered as a 40-digit table.
MAX_SIZE = 10**7


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer's shape. Sizes are counts (tokens, layers, features).

    vocab: vocabulary size V; context: sequence length s in tokens; layers: L;
    d_model: d; heads: h; kv_heads: key/value heads h_kv (h_kv < h is grouped-query
    attention); d_ff: feed-forward width; ffn: "swiglu" (W2(SiLU(W1 x) ⊙ W3 x)) or
    "gelu" (W2(GELU(W1 x))); norm: "rmsnorm" or "layernorm"; bias: linear layers and
    LayerNorms have biases; positions: "rope" or "learned"; tied: the LM head reuses the
    token embedding; max_positions: the rows of a learned position table, at least the
    context (None: the context itself; a preset keeps its own when the context changes).

    How the model is written, which decides what autograd keeps: implementation
    "reference" (calc's validation model, torch.nn.functional), "scratch" (a CS336
    from-scratch model: softmax, cross-entropy, SiLU written out) or "hf" (Hugging Face
    transformers in training mode); activation: the feed-forward's function, "silu" (the
    default for SwiGLU), "gelu" (exact; the default for the GELU MLP), "gelu_tanh"
    (F.gelu's tanh form) or "gelu_new" (GPT-2's tanh formula written out in Python);
    dropout: the probability on attention and residuals; use_cache: the model returns its
    keys and values (Hugging Face's default, even in training); fused_qkv: one projection
    makes Q, K and V (GPT-2's c_attn); qkv_bias: Q, K and V have biases even without
    `bias` (Qwen2); sliding_window: attention to the last this many tokens (Mistral).
    How a from-scratch model writes softmax ("max", "amax", "max-detached"), its
    cross-entropy ("logsumexp", "manual", "amax-manual") and the target's pick ("gather"
    or "index"): see calc.activations.scratch.
    """

    vocab: int
    context: int
    layers: int
    d_model: int
    heads: int
    kv_heads: int
    d_ff: int
    ffn: str = "swiglu"
    norm: str = "rmsnorm"
    bias: bool = False
    positions: str = "rope"
    tied: bool = False
    max_positions: int | None = None
    implementation: str = "reference"
    activation: str | None = None
    dropout: float = 0.0
    use_cache: bool = False
    fused_qkv: bool = False
    qkv_bias: bool = False
    sliding_window: int | None = None
    softmax: str = "max"
    cross_entropy: str = "logsumexp"
    pick: str = "gather"

    def __post_init__(self):
        if self.max_positions is None:
            object.__setattr__(self, "max_positions", self.context)
        if self.activation is None:
            object.__setattr__(self, "activation", "silu" if self.ffn == "swiglu" else "gelu")
        for name in SIZES:
            check_whole(name, getattr(self, name), MAX_SIZE)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"{name} must be one of {', '.join(allowed)}, not {echo(getattr(self, name))}")
        for name in FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise FieldError(name, f"{name} must be true or false, not {echo(getattr(self, name))}")
        if self.sliding_window is not None:
            check_whole("sliding_window", self.sliding_window, MAX_SIZE)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise FieldError("dropout", f"dropout must be a probability from 0 up to (not including) 1, not "
                                        f"{echo(self.dropout)}")
        if (self.ffn == "swiglu") != (self.activation == "silu"):
            raise FieldError("activation", f"activation {self.activation} does not go with ffn {self.ffn}: SwiGLU "
                                           "uses silu, the GELU MLP gelu, gelu_tanh or gelu_new")
        if self.d_model % self.heads:
            raise FieldError("heads", f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if self.heads % self.kv_heads:
            raise FieldError("kv_heads", f"kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if self.positions == "learned" and self.context > self.max_positions:
            raise FieldError("context", f"context ({self.context:,}) must be at most max_positions "
                                        f"({self.max_positions:,}), the rows of the learned position table")
        if self.positions == "rope" and self.d_head % 2:
            raise FieldError("heads", f"RoPE needs an even head size, and d_model / heads is {self.d_head}: "
                                      "change heads or d_model, or set positions to learned")

    @property
    def d_head(self) -> int:
        """Features per attention head, d_model / heads."""
        return self.d_model // self.heads

    def replace(self, **changes) -> "ModelShape":
        """A copy with some fields changed (validated again). Another feed-forward kind
        brings its own default activation, unless one is given too."""
        if "ffn" in changes and changes["ffn"] != self.ffn and "activation" not in changes:
            changes["activation"] = None
        return ModelShape(**{**self.__dict__, **changes})  # the fields, as the dataclass stores them

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def is_gpt2(shape: ModelShape) -> bool:
    """Hugging Face's GPT-2 code path: LayerNorm, the GELU MLP, learned positions, fused Q/K/V."""
    return (shape.implementation == "hf" and shape.norm == "layernorm" and shape.ffn == "gelu"
            and shape.positions == "learned")


def check_whole(name: str, value, limit: int) -> None:
    """FieldError unless `value` is an int from 1 to `limit`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"{name} must be a whole number, not {echo(value)}")
    if not 1 <= value <= limit:
        raise FieldError(name, f"{name} must be between 1 and {limit:,}, not {value:,}" if abs(value) < 10**30
                         else f"{name} must be between 1 and {limit:,}")


SIZES = ("vocab", "context", "layers", "d_model", "heads", "kv_heads", "d_ff", "max_positions")
"""The shape's sizes, each a whole number from 1 to MAX_SIZE."""
FLAGS = tuple(x.name for x in fields(ModelShape) if x.type == "bool")
"""The shape's true/false fields: bias, tied."""
