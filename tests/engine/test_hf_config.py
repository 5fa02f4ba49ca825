"""A Hugging Face config.json as calc's inputs: published configs give the published
parameter counts; anything else is a message naming hf_config and what is wrong."""

import json
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


@pytest.mark.parametrize("others", [{"finetune": "qlora"}, {"attention": "flash"}, {"finetune": "qlora", "dtype": "bf16"}])
def test_a_config_calc_cannot_read_is_the_only_message_about_the_model(others):
    # QLoRA and flash attention need Hugging Face's code, which a Llama config would set:
    # while the config cannot be read, nothing is checked against calc's default model
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": '{"model_type": "llama"}', **others})
    assert error.value.errors == {"hf_config": "the config has no hidden_size"}
    # a field that is wrong whatever the model still says so
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": '{"model_type": "llama"}', "batch": "two", **others})
    assert list(error.value.errors) == ["hf_config", "batch"]


def test_every_published_config_reads_to_fields_the_registry_knows():
    from calc.fields import NAMES

    for name in PUBLISHED:
        assert set(params_from_hf_config(text(name))) <= set(NAMES)


_LLAMA = {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "num_attention_heads": 4,
          "num_hidden_layers": 2, "intermediate_size": 128}


@pytest.mark.parametrize("written, read", [(1e-05, 1e-05), (0.9999999, 0.9999999), (-0.0, 0.0),
                                           (0.123456789, 0.123456789), (0, 0.0)])
def test_a_config_s_numbers_are_read_as_json_writes_them(written, read):
    inputs = parse_inputs({"hf_config": json.dumps({**_LLAMA, "attention_dropout": written})})
    assert inputs.shape.dropout == read
    assert parse_inputs(inputs_to_params(inputs) | {"hf_config": ""}).shape.dropout == read  # a link keeps it


@pytest.mark.parametrize("changes, message", [
    ({"hidden_act": ["silu"]}, "hidden_act must be a string"),
    ({"num_hidden_layers": [2]}, "num_hidden_layers must be a whole number"),
    ({"hidden_size": 4100, "num_attention_heads": 32}, "hidden_size (4,100) must be a multiple of num_attention_heads"),
    ({"head_dim": 96}, "head_dim 96 is not hidden_size / num_attention_heads (16)"),
    ({"attention_dropout": "0.1"}, "attention_dropout must be a probability"),
])
def test_wrong_types_are_refused_naming_the_key(changes, message):
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": json.dumps({**_LLAMA, **changes})})
    assert message in error.value.errors["hf_config"]


def test_gpt2_s_activation_as_a_list_and_a_config_without_a_model_type_are_named():
    gpt2 = json.loads(text("gpt2"))
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": json.dumps({**gpt2, "activation_function": ["gelu"]})})
    assert "activation_function must be a string" in error.value.errors["hf_config"]
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": "{}"})
    assert error.value.errors["hf_config"].startswith("the config has no model_type")


def test_gpt2_s_dropouts_that_differ_are_printed_as_they_differ():
    gpt2 = {**json.loads(text("gpt2")), "attn_pdrop": 0.1, "resid_pdrop": 0.1000001}
    with pytest.raises(InputError) as error:
        parse_inputs({"hf_config": json.dumps(gpt2)})
    assert "attn_pdrop 0.1, resid_pdrop 0.1000001" in error.value.errors["hf_config"]


def test_a_config_sets_the_model_and_leaves_the_run_s_context_and_cache_alone():
    # Qwen2-7B takes up to 131,072 tokens and ships use_cache true (for generation); the
    # run keeps calc's 1,024 tokens and no cache unless the reader says otherwise
    inputs = parse_inputs({"hf_config": text("qwen2-7b")})
    assert (inputs.shape.context, inputs.shape.max_positions, inputs.shape.use_cache) == (1024, 131_072, False)
    assert parse_inputs({"hf_config": text("qwen2-7b"), "context": "4096"}).shape.context == 4096


def test_what_calc_read_is_said_in_one_sentence():
    from calc.hf_config import config_summary
    inputs = parse_inputs({"hf_config": text("qwen2-7b")})
    said = config_summary(inputs.hf_config, inputs.shape, 7_615_616_512)
    assert said.startswith("Read Qwen2ForCausalLM (qwen2): 7,615,616,512 parameters (7.62 billion), 28 layers, "
                           "d_model 3,584, 28 heads (4 key-value), d_ff 18,944, a vocabulary of 152,064")
    assert "up to 131,072 tokens" in said and "1,024" in said
    assert inputs.model_name == "Qwen2ForCausalLM, from a qwen2 config.json"
    unnamed = parse_inputs({"hf_config": '{"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_head": 2, '
                                         '"n_layer": 1, "_name_or_path": "<b>\\u0007x</b>"}'})
    assert unnamed.model_name.startswith("<b>x</b>")  # printable characters only; the page escapes it
