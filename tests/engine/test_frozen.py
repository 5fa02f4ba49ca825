"""Full fine-tuning with the token embedding and the first decoder layers frozen (calc.frozen,
calc.activations.frozen) against Hugging Face's Llama-style code measured on CPU tensors
(validation/results-lora.json "frozen", `python -m validation.lora`)."""

import json
from pathlib import Path

import pytest

from calc import PRESETS, ModelShape, TrainingSetup, activation_table
from calc.fixed import fixed_table
from calc.frozen import trainable_count
from calc.inputs import InputError, parse_inputs
from calc.peak import optimizer_temporaries

ROOT = Path(__file__).resolve().parents[2]
MEASURED = json.loads((ROOT / "validation" / "results-lora.json").read_text())
SMALL = ModelShape(**MEASURED["shapes"]["small-hf-llama"])
FULL = json.loads((ROOT / "validation" / "results.json").read_text())["cases"]


def frozen_setup(case) -> TrainingSetup:
    return TrainingSetup(batch=case["batch"], attention=case["attention"], checkpoint=case["checkpoint"],
                         dtype=case["dtype"], device="cpu", freeze_embeddings=case["freeze_embeddings"],
                         frozen_blocks=case["frozen_blocks"])


def case_id(case) -> str:
    return (f"B{case['batch']}-{case['checkpoint']}-{case['dtype']}-{case['attention']}-"
            f"frozen{case['frozen_blocks']}")


@pytest.mark.parametrize("case", MEASURED["frozen"], ids=case_id)
def test_what_autograd_keeps_with_frozen_layers_equals_the_measured_step(case):
    assert activation_table(SMALL, frozen_setup(case)).bytes_for_batch() == case["activations"]


@pytest.mark.parametrize("case", MEASURED["frozen"], ids=case_id)
def test_only_the_parameters_that_train_have_gradients_and_cached_copies(case):
    setup = frozen_setup(case)
    assert trainable_count(SMALL, setup) == case["trainable"] == case["with_gradients"]
    fixed = {r.key: r for r in fixed_table(SMALL, setup).rows}
    assert fixed["gradients"].count == fixed["optimizer"].count == case["trainable"]
    copies = fixed["weight-copies"].bytes if "weight-copies" in fixed else 0  # autocast's, of trainable weights
    assert copies == case["weight_copies"]


def _measured_full(batch, checkpoint, dtype):
    return next(c for c in FULL if c["name"] == "small-hf-llama" and c["shape"]["d_model"] == 32 and (
        c["batch"], c["attention"], c["checkpoint"], c["dtype"], c["shape"].get("dropout", 0.0),
        c["shape"].get("use_cache", False)) == (batch, "flash", checkpoint, dtype, 0.0, False))


def test_a_frozen_embedding_keeps_no_token_ids_and_the_first_norm_keeps_only_x_rms():
    # one sequence of 16 tokens, d = 32, fp32, SDPA. Full training keeps 73,804 bytes
    # (validation/results.json); a frozen embedding's output needs no gradient, so autograd
    # drops the token ids (16 int64) and the first layer's attention-norm input and inverse
    # RMS (16 · 32 + 16 fp32), which only the input's gradient needs
    full = _measured_full(1, "none", "fp32")["activations"]
    frozen = next(c for c in MEASURED["frozen"] if (c["batch"], c["checkpoint"], c["dtype"], c["attention"],
                                                    c["frozen_blocks"]) == (1, "none", "fp32", "flash", 0))
    assert frozen["activations"] == full - 16 * 8 - (16 * 32 + 16) * 4 == 71_564


def test_with_every_layer_frozen_only_the_head_keeps_anything():
    # both layers frozen: the final norm keeps x·rms (16 · 32 fp32) for its gain, the head its
    # input (16 · 32 fp32), the loss its log-probabilities (16 · 64 fp32), the padded labels
    # (17 int64) and its total weight (an fp32 scalar)
    frozen = next(c for c in MEASURED["frozen"] if (c["batch"], c["checkpoint"], c["dtype"], c["attention"],
                                                    c["frozen_blocks"]) == (1, "none", "fp32", "flash", 2))
    assert frozen["activations"] == 16 * 32 * 4 + 16 * 32 * 4 + 16 * 64 * 4 + 17 * 8 + 4 == 8_332


def test_under_checkpointing_frozen_layers_still_keep_their_inputs():
    # transformers makes the embedding's output need a gradient when checkpointing is on,
    # so every layer keeps its input whatever is frozen: only the token ids go
    full = _measured_full(1, "block", "fp32")["activations"]
    kept = {c["frozen_blocks"]: c["activations"] for c in MEASURED["frozen"]
            if (c["batch"], c["checkpoint"], c["dtype"], c["attention"]) == (1, "block", "fp32", "flash")}
    assert kept == {0: full - 16 * 8, 1: full - 16 * 8, 2: full - 16 * 8}


def test_llama_3_8b_with_half_its_layers_frozen_trains_the_rest():
    # a Llama 3 8B layer: Q and O 4,096², K and V 4,096 · 1,024, three 4,096 · 14,336
    # feed-forward matrices and two norms of 4,096: 218,112,000 parameters. Frozen: the
    # 128,256 · 4,096 embedding and 16 layers, of 8,030,261,248
    layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336 + 2 * 4096
    assert layer == 218_112_000
    setup = TrainingSetup(attention="flash", freeze_embeddings=True, frozen_blocks=16)
    trainable = 8_030_261_248 - 128_256 * 4096 - 16 * layer
    assert trainable_count(PRESETS["llama-3-8b"], setup) == trainable == 4_015_132_672
    # AdamW's foreach step makes one sqrt of every second moment that exists: the trainable ones
    assert optimizer_temporaries(PRESETS["llama-3-8b"], setup.replace(optimizer_impl="foreach")) == 4 * trainable


@pytest.mark.parametrize("params, field", [
    ({"frozen_blocks": "4"}, "frozen_blocks"),  # below a trainable embedding
    ({"freeze_embeddings": "true", "frozen_blocks": "33"}, "frozen_blocks"),
    ({"freeze_embeddings": "true", "finetune": "lora", "attention": "flash"}, "freeze_embeddings"),
    ({"freeze_embeddings": "true", "dp": "2"}, "freeze_embeddings"),
    ({"freeze_embeddings": "true", "checkpoint": "selective"}, "checkpoint"),
    ({"tied": "true", "freeze_embeddings": "true"}, "freeze_embeddings"),  # the head is the embedding
    ({"preset": "gpt2-small", "freeze_embeddings": "true"}, "freeze_embeddings"),
    ({"freeze_embeddings": "true", "frozen_blocks": "-1"}, "frozen_blocks"),
])
def test_what_freezing_is_not_modelled_for_names_its_field(params, field):
    with pytest.raises(InputError) as error:
        parse_inputs({"preset": "llama-3-8b", "attention": "flash", **params})
    assert field in error.value.errors


def test_freezing_nothing_is_full_training():
    inputs = parse_inputs({"preset": "llama-3-8b", "frozen_blocks": "0", "attention": "flash"})
    assert not inputs.setup.freezes


def test_the_side_by_side_keeps_the_reader_s_frozen_layers_beside_lora():
    # a reader freezing Llama 3 8B's embedding and 16 layers sees that run as the full
    # fine-tuning column (4 · 4,015,132,672 bytes of fp32 gradients), with LoRA and QLoRA
    # beside it rather than refused for frozen layers they do not have
    from calc.comparisons import finetune_grid
    inputs = parse_inputs({"preset": "llama-3-8b", "context": "4096", "attention": "flash", "checkpoint": "block",
                           "dtype": "bf16", "freeze_embeddings": "true", "frozen_blocks": "16", "unit": "GB"})
    grid = finetune_grid(inputs)
    gradients = next(r.cells for r in grid.rows if r.key == "gradients")
    assert 4 * 4_015_132_672 == 16_060_530_688
    assert gradients[1] == "16.061 GB" and "—" not in gradients
    assert "16 layers and the embedding frozen" in grid.headers[1]
