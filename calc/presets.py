"""Published model shapes, by the names the CLI and the site use, each with the code that
runs it.

Sources: GPT-2 (Radford et al. 2019, the released checkpoints' configs: n_positions 1,024,
gelu_new, dropout 0.1 on embeddings, attention and residuals, use_cache on); the CS336
assignment 1 model (Stanford CS336, spring 2025: GPT-2 XL's size with RMSNorm, SwiGLU,
RoPE, no biases, untied head), run by calc's reference implementation; Llama 2 (Touvron et
al. 2023, 7B config); Llama 3 (Meta 2024, 8B config, trained at 8,192 tokens); Mistral 7B
(Jiang et al. 2023, v0.1 config: 4,096-token sliding window, max_position_embeddings
32,768, shown at 8,192 tokens). GPT-2, Llama and Mistral run as Hugging Face transformers
runs them (implementation "hf", with the published configs' dropout and use_cache).
"""

from __future__ import annotations

from calc.errors import FieldError, echo
from calc.shape import ModelShape

_GPT2 = dict(vocab=50257, context=1024, max_positions=1024, ffn="gelu", norm="layernorm", bias=True, positions="learned",
             tied=True, implementation="hf", activation="gelu_new", dropout=0.1, use_cache=True, fused_qkv=True)
_HF_LLAMA = dict(implementation="hf", use_cache=True)

PRESETS: dict[str, ModelShape] = {
    "gpt2-small": ModelShape(layers=12, d_model=768, heads=12, kv_heads=12, d_ff=3072, **_GPT2),
    "gpt2-medium": ModelShape(layers=24, d_model=1024, heads=16, kv_heads=16, d_ff=4096, **_GPT2),
    "gpt2-large": ModelShape(layers=36, d_model=1280, heads=20, kv_heads=20, d_ff=5120, **_GPT2),
    "gpt2-xl": ModelShape(layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400, **_GPT2),
    "cs336-gpt2-xl": ModelShape(vocab=50257, context=1024, layers=48, d_model=1600, heads=25, kv_heads=25, d_ff=6400),
    "llama-2-7b": ModelShape(vocab=32000, context=4096, layers=32, d_model=4096, heads=32, kv_heads=32, d_ff=11008,
                             **_HF_LLAMA),
    "llama-3-8b": ModelShape(vocab=128256, context=8192, layers=32, d_model=4096, heads=32, kv_heads=8, d_ff=14336,
                             **_HF_LLAMA),
    "mistral-7b": ModelShape(vocab=32000, context=8192, max_positions=32768, layers=32, d_model=4096, heads=32, kv_heads=8,
                             d_ff=14336, sliding_window=4096, **_HF_LLAMA),
}

DEFAULT_PRESET = "cs336-gpt2-xl"
"""The seed's model: the GPT-2 XL-shaped model of the question the site answers."""


def preset(name: str) -> ModelShape:
    """The shape published under `name`; FieldError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise FieldError("preset", f"unknown preset {echo(name)}; known: {', '.join(PRESETS)}") from None
