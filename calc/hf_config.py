"""A Hugging Face `config.json` as calc's inputs: the shape and the code it names.

Model types: gpt2, llama, mistral and qwen2. The text a reader pastes (or the CLI reads
from --hf-config PATH) becomes field values — vocab, d_model, heads, … implementation "hf"
— which any field the reader sets as well overrides. The context stays the reader's (the
length a run uses): the config's max_position_embeddings (n_positions for GPT-2) is the
longest the model takes, max_positions. use_cache stays the reader's too: a config's is
for generation, and training keeps no cache. Keys that change neither parameters nor
memory (rope_theta, initializer_range, token ids) are read by nobody here.
"""

from __future__ import annotations

import json

from calc import jsontext
from calc.errors import FieldError, echo

MAX_CONFIG = 20_000
"""The longest config text accepted, in characters (Llama 3's is about 900)."""
MODEL_TYPES = ("gpt2", "llama", "mistral", "qwen2")
GPT2_ACTIVATIONS = {"gelu_new": "gelu_new", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh"}


def _fail(message: str) -> FieldError:
    return FieldError("hf_config", message)


def _read(text: str) -> dict:
    if len(text) > MAX_CONFIG:
        raise _fail(f"a config.json is at most {MAX_CONFIG:,} characters; this text has {len(text):,}")
    try:
        config = jsontext.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(f"not JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except (ValueError, RecursionError):  # a number of over 4,300 digits, or nesting too deep
        raise _fail("not a config.json: a number too long, or nesting too deep") from None
    if not isinstance(config, dict):
        raise _fail("a config.json is one JSON object ({ … })")
    return config


def _whole(config: dict, key: str, default=None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(f"{key} must be a whole number of at least 1, not {echo(value)}" if key in config
                    else f"the config has no {key}")
    return value


def _flag(config: dict, key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise _fail(f"{key} must be true or false, not {echo(value)}")
    return value


def _probability(config: dict, key: str) -> float:
    """A JSON number from 0 up to 1, as written (1e-05, 0.9999999 and -0.0 included)."""
    value = config.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _fail(f"{key} must be a probability from 0 up to 1, not {echo(value)}")
    return float(value) + 0.0  # -0.0 is 0


def _text(config: dict, key: str, default: str) -> str:
    value = config.get(key, default)
    if not isinstance(value, str):
        raise _fail(f"{key} must be a string, not {echo(value)}")
    return value


def config_model_type(text: str) -> str:
    """The model_type of a config.json that params_from_hf_config has read."""
    return str(_read(str(text)).get("model_type"))


def config_name(text: str) -> str:
    """What a config.json that params_from_hf_config has read calls its model: its
    _name_or_path, else its first architecture, else "a <model_type> model" (at most 80
    characters of the text)."""
    config = _read(str(text))
    architectures = config.get("architectures")
    for name in (config.get("_name_or_path"), architectures[0] if isinstance(architectures, list) and architectures
                 else None):
        printable = "".join(ch for ch in name.strip()[:80] if ch.isprintable()) if isinstance(name, str) else ""
        if printable:
            return printable
    return f"a {config.get('model_type')} model"


def config_summary(text: str, shape, parameters: int) -> str:
    """The sentence that says what calc read from a pasted config.json: its model, the
    parameters (`parameters`, exact and in billions) and the widths of `shape`, the longest
    context it takes beside the one calc uses."""
    kv = f" ({shape.kv_heads:,} key-value)" if shape.kv_heads != shape.heads else ""
    return (f"Read {config_name(text)} ({config_model_type(text)}): {parameters:,} parameters "
            f"({parameters / 1e9:.2f} billion), {shape.layers:,} layers, d_model {shape.d_model:,}, "
            f"{shape.heads:,} heads{kv}, d_ff {shape.d_ff:,}, a vocabulary of {shape.vocab:,}; it takes up to "
            f"{shape.max_positions:,} tokens, and calc counts the context set here, {shape.context:,}.")


def params_from_hf_config(text: str) -> dict[str, str]:
    """calc's field values (as text) for a Hugging Face config.json; FieldError naming
    the field hf_config, and what is wrong or unsupported, otherwise."""
    config = _read(str(text))
    if "model_type" not in config:
        raise _fail(f"the config has no model_type; calc reads {', '.join(MODEL_TYPES)}")
    model_type = config["model_type"]
    if model_type not in MODEL_TYPES:
        raise _fail(f"model_type {echo(model_type)} is not supported; calc reads {', '.join(MODEL_TYPES)}")
    values = _gpt2(config) if model_type == "gpt2" else _llama(config, model_type)
    return {name: (str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float)
                   else "none" if value is None else str(value)) for name, value in values.items()}


def _gpt2(config: dict) -> dict:
    d, heads = _whole(config, "n_embd"), _whole(config, "n_head")
    activation = _text(config, "activation_function", "gelu_new")
    if activation not in GPT2_ACTIVATIONS:
        raise _fail(f"activation_function {echo(activation)} is not supported; calc reads "
                    f"{', '.join(GPT2_ACTIVATIONS)}")
    dropouts = {key: _probability(config, key) for key in ("attn_pdrop", "resid_pdrop", "embd_pdrop")}
    if len(set(dropouts.values())) > 1:
        raise _fail("calc models one dropout probability for the attention, the residuals and the embedding; this "
                    f"config has {', '.join(f'{k} {v!r}' for k, v in dropouts.items())}")
    if config.get("n_inner") is not None:
        d_ff = _whole(config, "n_inner")
    else:
        d_ff = 4 * d
    positions = _whole(config, "n_positions", 1024)
    return dict(vocab=_whole(config, "vocab_size"), max_positions=positions,
                layers=_whole(config, "n_layer"), d_model=d, heads=heads, kv_heads=heads, d_ff=d_ff, ffn="gelu",
                norm="layernorm", positions="learned", bias=True, qkv_bias=False,
                tied=_flag(config, "tie_word_embeddings", True), implementation="hf",
                activation=GPT2_ACTIVATIONS[activation], dropout=dropouts["attn_pdrop"],
                fused_qkv=True, sliding_window=None)


def _llama(config: dict, model_type: str) -> dict:
    d, heads = _whole(config, "hidden_size"), _whole(config, "num_attention_heads")
    kv_heads = _whole(config, "num_key_value_heads", heads)
    if d % heads:
        raise _fail(f"hidden_size ({d:,}) must be a multiple of num_attention_heads ({heads:,}): calc needs the head "
                    "size to be d_model / heads")
    if config.get("head_dim") not in (None, d // heads):
        raise _fail(f"head_dim {echo(config.get('head_dim'))} is not hidden_size / num_attention_heads "
                    f"({d // heads:,}); calc needs the head size to be d_model / heads")
    if _text(config, "hidden_act", "silu") != "silu":
        raise _fail(f"hidden_act {echo(config.get('hidden_act'))} is not supported; Llama-style models here use silu")
    attention_bias, mlp_bias = _flag(config, "attention_bias", False), _flag(config, "mlp_bias", False)
    if attention_bias != mlp_bias:
        raise _fail("calc models biases on every linear layer or on none (or Qwen2's on Q, K and V); this config has "
                    f"attention_bias {str(attention_bias).lower()} and mlp_bias {str(mlp_bias).lower()}")
    window = None
    if model_type == "mistral" and config.get("sliding_window") is not None:
        window = _whole(config, "sliding_window")
    if model_type == "qwen2" and _flag(config, "use_sliding_window", False):
        raise _fail("use_sliding_window (Qwen2's sliding window in some layers) is not supported")
    positions = _whole(config, "max_position_embeddings", 2048)
    return dict(vocab=_whole(config, "vocab_size"), max_positions=positions,
                layers=_whole(config, "num_hidden_layers"), d_model=d, heads=heads, kv_heads=kv_heads,
                d_ff=_whole(config, "intermediate_size"), ffn="swiglu", norm="rmsnorm", positions="rope",
                bias=attention_bias, qkv_bias=model_type == "qwen2", tied=_flag(config, "tie_word_embeddings", False),
                implementation="hf", activation="silu", dropout=_probability(config, "attention_dropout"),
                fused_qkv=False, sliding_window=window)
