"""Published model shapes, by the names the CLI and the site use.

Sources: GPT-2 (Radford et al. 2019, the released checkpoints' configs); the CS336
assignment 1 model (Stanford CS336, spring 2025: GPT-2 XL's size with RMSNorm, SwiGLU,
RoPE, no biases, untied head); Llama 2 (Touvron et al. 2023, 7B config); Llama 3 (Meta
2024, 8B config); Mistral 7B (Jiang et al. 2023, v0.1 config, trained at 8,192 tokens;
its sliding-window attention is not modelled).
"""

from __future__ import annotations

from calc.errors import FieldError, echo
from calc.shape import ModelShape

_GPT2 = dict(vocab=50257, context=1024, max_positions=1024, ffn="gelu", norm="layernorm", bias=True, positions="learned", tied=True)

PRESETS: dict[str, ModelShape] = {
    "gpt2-small": ModelShape(layers=12, d_model=768, heads=12, kv_heads=12, d_ff=3072, **_GPT2),
    "gpt2-medium": ModelShape(layers=24, d_model=1024, heads=16, kv_heads=16, d_ff=4096, **_GPT2),
    "gpt2-large": ModelShape(layers=36, d_model=1280, heads=20, kv_heads=20, d_ff=5120, **_GPT2),
    "gpt2-xl": ModelShape(layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400, **_GPT2),
    "cs336-gpt2-xl": ModelShape(vocab=50257, context=1024, layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400),
    "llama-2-7b": ModelShape(vocab=32000, context=4096, layers=32, d_model=4096, heads=32, kv_heads=32, d_ff=11008),
    "llama-3-8b": ModelShape(vocab=128256, context=8192, layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336),
    "mistral-7b": ModelShape(vocab=32000, context=8192, layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336),
}

DEFAULT_PRESET = "cs336-gpt2-xl"
"""The seed's model: the GPT-2 XL-shaped model of the question the site answers."""


def preset(name: str) -> ModelShape:
    """The shape published under `name`; FieldError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise FieldError("preset", f"unknown preset {echo(name)}; known: {', '.join(PRESETS)}") from None
