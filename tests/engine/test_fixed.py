import pytest

from calc import PRESETS, TrainingSetup, fixed_table
from calc.parameters import matrix_parameter_count

SEED = PRESETS["cs336-gpt2-xl"]
P = 2_127_057_600


@pytest.mark.parametrize("optimizer, per_parameter", [("adamw", 4 + 4 + 8), ("sgd", 4 + 4 + 4)])
def test_fp32_bytes_per_parameter(optimizer, per_parameter):
    table = fixed_table(SEED, TrainingSetup(optimizer=optimizer))
    assert table.total_bytes == per_parameter * P


def test_bf16_autocast_adds_a_two_byte_copy_of_every_weight_matrix():
    L, d, d_ff, V = 48, 1600, 6400, 50257
    matrices = L * (4 * d * d + 3 * d * d_ff) + V * d  # Q K V O, W1 W2 W3, LM head (not the lookup)
    assert matrix_parameter_count(SEED) == matrices
    rows = {r.key: r.bytes for r in fixed_table(SEED, TrainingSetup(dtype="bf16")).rows}
    assert rows["weight-copies"] == 2 * matrices
    assert rows["parameters"] == 4 * P and rows["optimizer"] == 8 * P


def test_checkpointing_keeps_only_the_heads_copy():
    rows = {r.key: r.bytes for r in fixed_table(SEED, TrainingSetup(dtype="bf16", checkpoint="block")).rows}
    assert rows["weight-copies"] == 2 * 50257 * 1600
