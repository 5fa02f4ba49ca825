"""LoRA fine-tuning (calc.lora, calc.activations.lora) against peft's LoRA measured on CPU
tensors (validation/results-lora.json, `python -m validation.lora`) and peft's own counts."""

import json
from pathlib import Path

import pytest

from calc import PRESETS, ModelShape, TrainingSetup, activation_table
from calc.errors import FieldError
from calc.fixed import fixed_table, lora_states
from calc.inputs import InputError, parse_inputs
from calc.lora import adapter_count

ROOT = Path(__file__).resolve().parents[2]
MEASURED = json.loads((ROOT / "validation" / "results-lora.json").read_text())
SHAPES = {name: ModelShape(**cfg) for name, cfg in MEASURED["shapes"].items()}
FULL = json.loads((ROOT / "validation" / "results.json").read_text())["cases"]


def lora_setup(step) -> TrainingSetup:
    return TrainingSetup(batch=step["batch"], attention=step["attention"], checkpoint=step["checkpoint"],
                         dtype=step["dtype"], device="cpu", finetune="lora", lora_rank=step["rank"],
                         lora_targets=step["targets"], lora_dropout=step["dropout"])


def step_id(step) -> str:
    return (f"B{step['batch']}-{step['checkpoint']}-{step['dtype']}-{step['targets'].replace(',', '+')}-"
            f"dropout{step['dropout']}")


@pytest.mark.parametrize("step", MEASURED["steps"], ids=step_id)
def test_what_autograd_keeps_under_lora_equals_peft_s_step_to_the_byte(step):
    table = activation_table(SHAPES[step["shape"]], lora_setup(step))
    assert table.bytes_for_batch() == step["activations"]


@pytest.mark.parametrize("step", MEASURED["steps"], ids=step_id)
def test_the_adapters_are_what_trains_and_the_base_is_frozen(step):
    shape, setup = SHAPES[step["shape"]], lora_setup(step)
    assert adapter_count(shape, setup) == step["trainable"]
    weights, gradients, optimizer = lora_states(shape, setup)
    assert weights == step["frozen_bytes"] + step["trainable_bytes"]  # the base in its dtype, the adapters in fp32
    assert gradients == 4 * step["trainable"] and optimizer == 8 * step["trainable"]


def test_lora_keeps_less_than_full_training_by_what_only_frozen_weights_needed():
    # small Llama-style code, one sequence of 16 tokens, d = 32, fp32, SDPA, LoRA rank 4 on
    # all seven linear layers of both layers, no dropout. Full training keeps 73,804 bytes
    # (validation/results.json). LoRA keeps no token ids (the embedding is frozen: 16 int64),
    # no x·rms for the frozen norm gains (two a layer and the final norm's: 5 · 16 · 32
    # fp32), no head input (the head is frozen: 16 · 32 fp32), and in the first layer no
    # attention-norm input and inverse RMS (the embedding's output needs no gradient:
    # 16 · 32 + 16 fp32); it adds each adapter's r-wide A output (7 · 2 · 16 · 4 fp32)
    full = next(c for c in FULL if c["name"] == "small-hf-llama" and c["shape"]["d_model"] == 32 and (
        c["batch"], c["attention"], c["checkpoint"], c["dtype"], c["shape"].get("dropout", 0.0),
        c["shape"].get("use_cache", False)) == (1, "flash", "none", "fp32", 0.0, False))
    lora = next(s for s in MEASURED["steps"] if (s["batch"], s["checkpoint"], s["dtype"], s["targets"], s["dropout"])
                == (1, "none", "fp32", "all-linear", 0.0))
    dropped = 16 * 8 + 5 * 16 * 32 * 4 + 16 * 32 * 4 + (16 * 32 + 16) * 4
    added = 7 * 2 * 16 * 4 * 4
    assert lora["activations"] == full["activations"] - dropped + added


def test_autocast_caches_every_adapter_and_the_graph_keeps_all_but_the_first_layer_s_qkv_a():
    # bf16 autocast caches each adapter's bf16 copy; A's copy is kept for its input's
    # gradient only where that input needs one: not the first layer's Q, K and V inputs
    # (rank 4, d = 32: three A matrices of 4 · 32)
    step = next(s for s in MEASURED["steps"] if (s["batch"], s["checkpoint"], s["dtype"], s["targets"], s["dropout"])
                == (1, "none", "bf16", "all-linear", 0.0))
    assert step["weight_copies"] == 2 * (step["trainable"] - 3 * 4 * 32)
    fixed = {r.key: r.bytes for r in fixed_table(SHAPES["small-hf-llama"], lora_setup(step)).rows}
    assert fixed["weight-copies"] == 2 * step["trainable"]


@pytest.mark.parametrize("preset, rank, targets, printed", [
    # peft's print_trainable_parameters on the published models
    ("llama-3-8b", 16, "all-linear", 41_943_040),  # "trainable params: 41,943,040 || all params: 8,072,204,288"
    ("llama-2-7b", 8, "q_proj,v_proj", 4_194_304),  # "trainable params: 4,194,304 || all params: 6,742,609,920"
])
def test_adapter_counts_equal_what_peft_prints(preset, rank, targets, printed):
    setup = TrainingSetup(finetune="lora", lora_rank=rank, lora_targets=targets, attention="flash")
    assert adapter_count(PRESETS[preset], setup) == printed


def test_llama_3_8b_lora_on_a_bf16_base_holds_two_bytes_a_frozen_weight():
    # 8,030,261,248 frozen weights in bf16, 41,943,040 fp32 adapters with their fp32
    # gradients and AdamW's two fp32 moments
    setup = TrainingSetup(finetune="lora", lora_rank=16, attention="flash", dtype="bf16-master")
    assert lora_states(PRESETS["llama-3-8b"], setup) == (2 * 8_030_261_248 + 4 * 41_943_040, 4 * 41_943_040,
                                                         8 * 41_943_040)


@pytest.mark.parametrize("params, field", [
    ({"finetune": "lora", "attention": "explicit"}, "attention"),
    ({"preset": "gpt2-small", "finetune": "lora", "attention": "flash"}, "finetune"),
    ({"finetune": "lora", "attention": "flash", "lora_targets": "lm_head"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "lora_targets": "gate_proj,up_proj"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "tp": "2"}, "finetune"),
    ({"finetune": "qlora"}, "finetune"),
    ({"finetune": "lora", "lora_rank": "0"}, "lora_rank"),
    ({"finetune": "lora", "lora_dropout": "1.5"}, "lora_dropout"),
])
def test_what_lora_is_not_modelled_for_names_its_field(params, field):
    with pytest.raises(InputError) as error:
        parse_inputs({"preset": "llama-3-8b", **params})
    assert field in error.value.errors


def test_targets_are_read_in_any_order_and_written_in_the_layer_s():
    inputs = parse_inputs({"preset": "llama-3-8b", "finetune": "lora", "attention": "flash",
                           "lora_targets": " v_proj, q_proj"})
    assert inputs.setup.lora_targets == "q_proj,v_proj"
    with pytest.raises(FieldError):
        TrainingSetup(finetune="lora", lora_targets="v_proj,q_proj")
