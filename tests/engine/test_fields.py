"""The field registry: one declaration per input, read by the parser, the CLI and the form."""

import pytest

from calc.cli import build_parser
from calc.errors import InputError
from calc.fields import BY_NAME, FIELDS, PRESET_FIELDS
from calc.inputs import field_values, parse_inputs
from calc.presets import PRESETS
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.site.form import inputs_panel


def test_every_shape_and_setup_attribute_is_one_field():
    assert {f.attribute for f in FIELDS if f.target == "shape"} == set(ModelShape.__dataclass_fields__)
    assert {f.attribute for f in FIELDS if f.target == "setup"} == set(TrainingSetup.__dataclass_fields__)
    assert set(PRESET_FIELDS) == set(ModelShape.__dataclass_fields__)


def test_every_field_is_a_cli_flag_and_an_input_of_the_panel():
    # fsdp, an alias of zero for the command line and links, is the one field no panel shows
    flags = {option for action in build_parser()._actions for option in action.option_strings}
    panel = inputs_panel({}, ("compare", "claim", "parallel", "solver", "buffers", "finetune"))
    for field in FIELDS:
        assert field.flag in flags
        assert (f'name="{field.name}"' in panel) == (field.group != "aliases"), field.name
    assert [f.name for f in FIELDS if f.group == "aliases"] == ["fsdp"]


def test_fsdp_names_set_the_zero_stage_and_a_contradiction_is_named():
    assert [parse_inputs({"dp": "2", "fsdp": name}).setup.zero for name in ("no-shard", "grad-op", "full")] == [0, 2, 3]
    assert parse_inputs({"dp": "2", "fsdp": "full", "zero": "3"}).setup.zero == 3
    with pytest.raises(InputError) as error:
        parse_inputs({"dp": "2", "fsdp": "full", "zero": "1"})
    assert list(error.value.errors) == ["fsdp"]


def test_every_choice_and_flag_value_is_accepted_as_shown():
    for field in FIELDS:
        for value in field.values:
            if field.name in ("tp",) or field.group == "aliases":  # an alias shows as the field it sets
                continue
            needs = {"sp": {"tp": "5", "context": "1000"},  # sequence parallelism needs tp dividing the context
                     "activation": {} if value == "silu" else {"ffn": "gelu"},  # SwiGLU's is SiLU
                     "framework": {"deepspeed": {"dp": "2", "zero": "1"}}.get(value, {}),  # DeepSpeed shards
                     # LoRA is modelled for Llama-style Hugging Face code (under SDPA, its default there)
                     "finetune": {"lora": {"preset": "llama-3-8b"}, "qlora": {"preset": "llama-3-8b"}}.get(value, {}),
                     # peft's prepare_model_for_kbit_training prepares QLoRA's 4-bit base
                     "prepare_kbit": {"true": {"preset": "llama-3-8b", "finetune": "qlora"}}.get(value, {}),
                     # frozen layers are modelled for Llama-style Hugging Face code
                     "freeze_embeddings": {"true": {"preset": "llama-3-8b", "attention": "flash"}}.get(value, {}),
                     # bitsandbytes' 8-bit AdamW keeps no fp32 master copy
                     **{name: {"dtype": "bf16"} if "8bit" in value else {} for name in ("optimizer", "b_optimizer")}}
            params = {field.name: value, **needs.get(field.name, {})}
            inputs = parse_inputs(params)
            assert field_values(inputs)[field.name] == value


@pytest.mark.parametrize("text, value", [("4096", 4096), ("4,096", 4096), ("1_000_000", 1_000_000), (" 12 ", 12)])
def test_whole_numbers_as_people_write_them(text, value):
    assert parse_inputs({"context": text}).shape.context == value


@pytest.mark.parametrize("text", ["4,5", "40,96", "1,0000", "12.0", "1e3", "0x10", "-3", "", "１２", "9" * 25])
def test_whole_numbers_refused_with_the_field_named(text):
    with pytest.raises(InputError) as error:
        parse_inputs({"context": text})
    assert list(error.value.errors) == ["context"]
    assert error.value.errors["context"].startswith("context ")


def test_a_message_quotes_at_most_forty_characters_of_the_value():
    with pytest.raises(InputError) as error:
        parse_inputs({"dtype": "x" * 100_000})
    assert len(error.value.errors["dtype"]) < 120


def test_presets_declared_once_are_the_preset_field_choices():
    assert BY_NAME["preset"].values == tuple(PRESETS)
