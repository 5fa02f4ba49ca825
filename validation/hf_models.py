"""Hugging Face transformers models built from calc-style shape dicts, with no weights
loaded: GPT-2 (LayerNorm, GELU MLP, learned positions) and the Llama family (Llama,
Mistral when a sliding window is set, Qwen2 when Q/K/V have biases)."""

from __future__ import annotations

import contextlib
import unittest.mock

import transformers
import transformers.masking_utils

transformers.logging.set_verbosity_error()

ACTIVATIONS = {"gelu_new": "gelu_new", "gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "silu": "silu"}
"""calc's activation names to transformers' ACT2FN keys."""


def hf_config(cfg: dict):
    """The transformers config object for a shape dict with implementation "hf"."""
    common = dict(vocab_size=cfg["vocab"], use_cache=cfg.get("use_cache", False),
                  tie_word_embeddings=cfg.get("tied", False), bos_token_id=0, eos_token_id=0, pad_token_id=None)
    dropout = cfg.get("dropout", 0.0)
    if cfg.get("ffn", "swiglu") == "gelu":
        return transformers.GPT2Config(n_positions=cfg.get("max_positions") or cfg["context"], n_embd=cfg["d_model"],
                                       n_layer=cfg["layers"], n_head=cfg["heads"], n_inner=cfg["d_ff"],
                                       activation_function=ACTIVATIONS[cfg.get("activation") or "gelu"],
                                       attn_pdrop=dropout, resid_pdrop=dropout, embd_pdrop=dropout, **common)
    llama = dict(hidden_size=cfg["d_model"], intermediate_size=cfg["d_ff"], num_hidden_layers=cfg["layers"],
                 num_attention_heads=cfg["heads"], num_key_value_heads=cfg["kv_heads"],
                 max_position_embeddings=cfg.get("max_positions") or cfg["context"], attention_dropout=dropout,
                 hidden_act="silu", **common)
    if cfg.get("sliding_window") is not None:
        return transformers.MistralConfig(sliding_window=cfg["sliding_window"], **llama)
    if cfg.get("qkv_bias"):
        return transformers.Qwen2Config(**llama)
    return transformers.LlamaConfig(attention_bias=cfg.get("bias", False), mlp_bias=cfg.get("bias", False), **llama)


def hf_model(cfg: dict, attention: str):
    """The model in training mode; attention "explicit" is attn_implementation "eager",
    "flash" is "sdpa"."""
    implementation = {"explicit": "eager", "flash": "sdpa"}[attention]
    model = transformers.AutoModelForCausalLM.from_config(hf_config(cfg), attn_implementation=implementation)
    return model.train()



def _skip_mask_as_on_real_tensors(padding_mask, q_length, kv_length, q_offset, kv_offset, local_attention_size=None):
    """Whether SDPA can use is_causal instead of a mask, decided as transformers decides it
    on real tensors for the inputs measured here: no attention_mask, an empty cache, the
    whole sequence at once. Only a sliding window the context reaches needs a mask."""
    assert padding_mask is None and q_length == kv_length, "validation runs pass no attention mask"
    return local_attention_size is None or kv_length < local_attention_size


def _no_packed_sequences(position_ids):
    """Packed sequences, as transformers finds them on real tensors for the inputs measured
    here: the position ids are 0 … s−1 in every row, so there are none."""
    return None


def as_on_real_tensors():
    """Make transformers take, on fake tensors, the path it takes on real ones.

    Before skipping the causal mask for SDPA, transformers reads the position ids (are
    several sequences packed in one row?) and asks `is_tracing(tensor)`, which is true for a
    fake tensor (it cannot read a fake's values). On fakes it then builds and passes the
    mask it skips on real tensors, and gradient checkpointing keeps it (B·s² bytes). Both
    decisions are made here as on real tensors."""
    stack = contextlib.ExitStack()
    stack.enter_context(unittest.mock.patch.object(transformers.masking_utils, "_ignore_causal_mask_sdpa",
                                                   _skip_mask_as_on_real_tensors))
    stack.enter_context(unittest.mock.patch.object(transformers.masking_utils, "find_packed_sequence_indices",
                                                   _no_packed_sequences))
    return stack
