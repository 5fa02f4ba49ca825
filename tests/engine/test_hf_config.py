"""A Hugging Face config.json as calc's inputs: published configs give the published
parameter counts; anything else is a message naming hf_config and what is wrong."""

from pathlib import Path

import pytest

from calc import parameter_count
from calc.errors import InputError
from calc.hf_config import params_from_hf_config
from calc.inputs import inputs_to_params, parse_inputs

CONFIGS = Path(__file__).resolve().parents[2] / "validation" / "hf_configs"

# Parameter counts the model repositories publish (safetensors metadata, model cards)
PUBLISHED = {"meta-llama-3-8b": 8_030_261_248, "qwen2-7b": 7_615_616_512, "qwen2-0.5b": 494_032_768,
             "mistral-7b-v0.1": 7_241_732_096, "gpt2": 124_439_808}


def text(name: str) -> str:
    return (CONFIGS / f"{name}.json").read_text()


@pytest.mark.parametrize("name, published", PUBLISHED.items())
def test_published_configs_give_published_parameter_counts(name, published):
    assert parameter_count(parse_inputs({"hf_config": text(name)}).shape) == published


def test_qwen2_7b_by_hand():
    # 28 layers of: Q 3584² + 3584 bias, K and V 3584·512 + 512 each, O 3584², MLP
    # 3·3584·18944, two RMSNorm gains; embedding and untied head 152064·3584; final norm
    d, kv, ff, V, L = 3584, 512, 18944, 152064, 28
    layer = d * d + d + 2 * (d * kv + kv) + d * d + 3 * d * ff + 2 * d
    assert L * layer + 2 * V * d + d == 7_615_616_512


def test_a_config_sets_the_code_and_fields_set_too_win():
    inputs = parse_inputs({"hf_config": text("mistral-7b-v0.1"), "context": "4096"})
    shape = inputs.shape
    assert (shape.implementation, shape.sliding_window, shape.kv_heads, shape.max_positions) == ("hf", 4096, 8, 32768)
    assert shape.context == 4096  # the field set beside the config


def test_a_link_carries_the_fields_a_config_set_not_the_config():
    inputs = parse_inputs({"hf_config": text("qwen2-0.5b"), "context": "2048"})
    link = inputs_to_params(inputs)
    assert "hf_config" not in link and link["d_model"] == "896" and link["qkv_bias"] == "true"
    assert parse_inputs(link).shape == inputs.shape


@pytest.mark.parametrize("config, says", [
    ("not json", "not JSON"),
    ("[1, 2]", "one JSON object"),
    ('{"model_type": "falcon", "hidden_size": 64}', "model_type 'falcon' is not supported; calc reads gpt2, llama"),
    ('{"model_type": "llama"}', "the config has no hidden_size"),
    ('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, '
     '"intermediate_size": 128, "vocab_size": 100, "hidden_act": "gelu"}', "hidden_act 'gelu' is not supported"),
    ('{"model_type": "gpt2", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 100, "attn_pdrop": 0.1, '
     '"resid_pdrop": 0.0}', "one dropout probability"),
    ('{"model_type": "llama", "hidden_size": -1}', "hidden_size must be a whole number"),
    ("9" * 5000, "a number too long"),
    ("[" * 100_000, "at most 20,000 characters"),
])
def test_what_cannot_be_read_is_said_for_the_field(config, says):
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": config})
    assert list(error.value.errors) == ["hf_config"] and says in error.value.errors["hf_config"]


def test_every_published_config_reads_to_fields_the_registry_knows():
    from calc.fields import NAMES

    for name in PUBLISHED:
        assert set(params_from_hf_config(text(name))) <= set(NAMES)
