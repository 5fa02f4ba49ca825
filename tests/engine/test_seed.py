"""The seed's own accounting reproduces every figure the seed prints."""

from calc import PRESETS, TrainingSetup, activation_table

SEED = PRESETS["cs336-gpt2-xl"]


def seed_rows():
    return {r.key: r.count for r in activation_table(SEED, TrainingSetup(accounting="seed")).rows}


def test_seed_block_is_83_558_400_values():
    rows = seed_rows()
    L = 48
    attention = sum(rows[k] for k in ("attention-input", "qkv", "scores", "probabilities", "attention-output")) // L
    ffn = sum(rows[k] for k in ("ffn-input", "w1-output", "w3-output", "activation-output", "w2-output")) // L
    assert attention == 1_638_400 + 4_915_200 + 26_214_400 + 26_214_400 + 1_638_400 == 60_620_800
    assert ffn == 1_638_400 + 6_553_600 + 6_553_600 + 6_553_600 + 1_638_400 == 22_937_600
    assert attention + ffn == 83_558_400


def test_seed_total_is_4_065_543_168_values_and_16_262_172_672_bytes():
    table = activation_table(SEED, TrainingSetup(accounting="seed"))
    assert table.total_count == 1_638_400 + 48 * 83_558_400 + 53_101_568 == 4_065_543_168
    assert table.total_bytes == 4_065_543_168 * 4 == 16_262_172_672


def test_seeds_15_15_gb_is_really_gib():
    nbytes = activation_table(SEED, TrainingSetup(accounting="seed")).total_bytes
    assert round(nbytes / 2**30, 2) == 15.15  # what the seed printed, as "GB"
    assert round(nbytes / 10**9, 2) == 16.26  # the same bytes in GB


def test_seed_output_layer_is_53_101_568_values():
    rows = seed_rows()
    assert rows["final-norm"] + rows["logits"] == 1_638_400 + 51_463_168 == 53_101_568


def test_seed_scales_with_batch_and_dtype():
    one = activation_table(SEED, TrainingSetup(accounting="seed"))
    eight_bf16 = activation_table(SEED, TrainingSetup(accounting="seed", batch=8, dtype="bf16"))
    assert eight_bf16.bytes_for_batch() == 8 * 4_065_543_168 * 2
    assert one.bytes_for_batch() == 16_262_172_672
