import pytest

from calc import PRESETS, TrainingSetup, fixed_table, parameter_table
from calc.parameters import matrix_parameter_count, parameter_count

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


def test_the_fixed_table_s_total_adds_bytes_not_its_rows_different_counts():
    # the weights, gradients and AdamW rows each count the same P parameters, and QLoRA's
    # quantized weights are counted in bytes: a sum of those counts means nothing, so the
    # total row gives the bytes alone (P·(4 + 4 + 8) for fp32 AdamW)
    from calc.render import total_cells
    shape = PRESETS["gpt2-small"]
    table = fixed_table(shape, TrainingSetup(dtype="fp32"))
    P = parameter_count(shape)
    count, _, nbytes, _ = total_cells(table, "GB")
    assert count == "" and nbytes == f"{16 * P:,}"
    qlora = fixed_table(PRESETS["llama-3-8b"], TrainingSetup(finetune="qlora", dtype="bf16-master", attention="flash"))
    assert total_cells(qlora, "GB")[0] == ""
    assert total_cells(parameter_table(shape), "GB")[0] == f"{P:,}"  # the parameters table's rows do add up
