"""calc's `autograd` accounting against PyTorch's own saved tensors, and by hand.

validation/results.json holds what `python -m validation.run` measured with saved-tensor
hooks (torch on CPU, storages de-duplicated, parameters apart). calc must equal it to the
byte on every case; these tests need no torch.
"""

import json
from pathlib import Path

import pytest

from calc import PRESETS, ModelShape, TrainingSetup, activation_table
from calc.fixed import weight_copy_count

RESULTS = json.loads((Path(__file__).resolve().parents[2] / "validation" / "results.json").read_text())
SEED = PRESETS["cs336-gpt2-xl"]


def case_id(case):
    return f"{case['name']}-B{case['batch']}-{case['attention']}-{case['checkpoint']}-{case['dtype']}"


def test_the_grid_covers_the_seed_shape_at_batch_1_and_every_option():
    seed_cases = {(c["attention"], c["checkpoint"], c["dtype"]) for c in RESULTS["cases"]
                  if c["name"] == "cs336-gpt2-xl" and c["batch"] == 1}
    assert len(seed_cases) == 8
    assert len(RESULTS["cases"]) >= 100


@pytest.mark.parametrize("case", RESULTS["cases"], ids=case_id)
def test_autograd_accounting_equals_pytorch_to_the_byte(case):
    shape = ModelShape(**case["shape"])
    setup = TrainingSetup(batch=case["batch"], attention=case["attention"], checkpoint=case["checkpoint"], dtype=case["dtype"])
    assert activation_table(shape, setup).bytes_for_batch() == case["activations"]
    assert 2 * weight_copy_count(shape, setup) == case["weight_copies"]


def test_seed_model_fp32_explicit_by_hand():
    L, s, d, h, d_ff, V = 48, 1024, 1600, 25, 6400, 50257
    block = (
        2 * s * d + s  # attention norm: input x, x·rms, inverse RMS
        + s * d  # the normed input, shared by Q, K and V
        + 2 * s * d  # Q and K after RoPE (QKᵀ keeps both)
        + h * s * s  # softmax output (the scores are not kept)
        + s * d  # V (P·V keeps it)
        + s * d  # attention output before W_O
        + 2 * s * d + s  # feed-forward norm
        + s * d  # its output, shared by W1 and W3
        + 4 * s * d_ff  # W1 x, SiLU(W1 x), W3 x, and their product
    )
    head = 2 * s * d + s + s * d + s * V  # final norm, head input, log-probabilities
    expected = 4 * (L * block + head) + 8 * s + 8 * s + s * s + 4  # + token ids, targets, mask, NLL weight
    assert activation_table(SEED, TrainingSetup()).bytes_for_batch() == expected == 13_439_033_348


def test_flash_keeps_log_sum_exp_instead_of_probabilities():
    L, s, d, h = 48, 1024, 1600, 25
    explicit = activation_table(SEED, TrainingSetup(attention="explicit")).bytes_for_batch()
    flash = activation_table(SEED, TrainingSetup(attention="flash")).bytes_for_batch()
    # explicit keeps P (h·s²) and the mask (s² bool); flash keeps log-sum-exp (h·s) and its
    # own output in head layout (s·d) beside the concatenated copy W_O keeps.
    assert explicit - flash == L * (4 * h * s * s - 4 * h * s - 4 * s * d) + s * s


def test_per_block_checkpointing_keeps_block_inputs_only():
    L, s, d, V = 48, 1024, 1600, 50257
    kept = activation_table(SEED, TrainingSetup(checkpoint="block", attention="flash")).bytes_for_batch()
    head = 4 * (2 * s * d + s + s * d + s * V)
    assert kept == 4 * L * s * d + head + 8 * s + 8 * s + 4


def test_grouped_query_attention_keeps_k_and_v_after_repeating_them():
    llama3 = PRESETS["llama-3-8b"]
    as_mha = llama3.replace(kv_heads=llama3.heads)
    for attention in ("explicit", "flash"):
        setup = TrainingSetup(attention=attention)
        assert activation_table(llama3, setup).bytes_for_batch() == activation_table(as_mha, setup).bytes_for_batch()
