"""ModelShape: the architecture whose memory we count, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass, fields

from calc.errors import FieldError, echo

FFN_KINDS = ("swiglu", "gelu")
NORM_KINDS = ("rmsnorm", "layernorm")
POSITION_KINDS = ("rope", "learned")
CHOICES = {"ffn": FFN_KINDS, "norm": NORM_KINDS, "positions": POSITION_KINDS}
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

    def __post_init__(self):
        if self.max_positions is None:
            object.__setattr__(self, "max_positions", self.context)
        for name in SIZES:
            check_whole(name, getattr(self, name), MAX_SIZE)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"{name} must be one of {', '.join(allowed)}, not {echo(getattr(self, name))}")
        for name in FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise FieldError(name, f"{name} must be true or false, not {echo(getattr(self, name))}")
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
        """A copy with some fields changed (validated again)."""
        return ModelShape(**{**self.__dict__, **changes})  # the fields, as the dataclass stores them

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def check_whole(name: str, value, limit: int) -> None:
    """FieldError unless `value` is an int from 1 to `limit`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(name, f"{name} must be a whole number, not {echo(value)}")
    if not 1 <= value <= limit:
        raise FieldError(name, f"{name} must be between 1 and {limit:,}, not {value:,}" if abs(value) < 10**30
                         else f"{name} must be between 1 and {limit:,}")


SIZES = tuple(x.name for x in fields(ModelShape) if x.type.startswith("int"))
"""The shape's whole-number fields, in declaration order: vocab, context, … d_ff."""
FLAGS = tuple(x.name for x in fields(ModelShape) if x.type == "bool")
"""The shape's true/false fields: bias, tied."""
