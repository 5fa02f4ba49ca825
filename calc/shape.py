"""ModelShape: the architecture whose memory we count, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass

FFN_KINDS = ("swiglu", "gelu")
NORM_KINDS = ("rmsnorm", "layernorm")
POSITION_KINDS = ("rope", "learned")

_SIZE_FIELDS = ("vocab", "context", "layers", "d_model", "heads", "kv_heads", "d_ff")
_CHOICES = {"ffn": FFN_KINDS, "norm": NORM_KINDS, "positions": POSITION_KINDS}
_FLAGS = ("bias", "tied")

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
    token embedding.
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

    def __post_init__(self):
        for name in _SIZE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
            if value > MAX_SIZE:
                raise ValueError(f"{name} must be at most {MAX_SIZE:,}, not {value:,}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in _FLAGS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.d_model % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if self.positions == "rope" and self.d_head % 2:
            raise ValueError(f"RoPE needs an even head size; d_model/heads is {self.d_head}")

    @property
    def d_head(self) -> int:
        """Features per attention head, d_model / heads."""
        return self.d_model // self.heads

    def replace(self, **changes) -> "ModelShape":
        """A copy with some fields changed (validated again)."""
        return ModelShape(**{**self.__dict__, **changes})  # the fields, as the dataclass stores them

    def as_dict(self) -> dict:
        return dict(self.__dict__)
