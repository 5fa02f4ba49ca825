"""What calc says CUDA does differently, against PyTorch's own lists and source.

validation/results-cuda-derived.json records, beside its cases, the op lists of the
installed PyTorch's torch/include/ATen/autocast_mode.h, read by
validation/cuda_rules.py.op_lists(); these tests need no torch.
"""

import json
from pathlib import Path

import pytest

from calc import PRESETS, TrainingSetup, activation_table
from calc.cuda import FP32_ON_CUDA, LOWERED_ON_BOTH, attention_kernel
from calc.errors import FieldError

DERIVED = json.loads((Path(__file__).resolve().parents[2] / "validation" / "results-cuda-derived.json").read_text())
LISTS = {key: set(ops) for key, ops in DERIVED["autocast_op_lists"].items()}


def test_the_op_lists_come_from_the_pytorch_the_cpu_measurements_use():
    cpu = json.loads((Path(__file__).resolve().parents[2] / "validation" / "results.json").read_text())
    assert DERIVED["torch"] == cpu["torch"] == "2.13.0"


@pytest.mark.parametrize("op", FP32_ON_CUDA)
def test_cuda_autocast_runs_these_ops_in_fp32(op):
    assert op in LISTS["fp32"] | LISTS["fp32_out"]


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "sum"])
def test_softmax_log_softmax_and_sum_get_an_fp32_output_not_an_fp32_input(op):
    assert op in LISTS["fp32_out"] and op not in LISTS["fp32"]


@pytest.mark.parametrize("op", LOWERED_ON_BOTH)
def test_matmuls_and_sdpa_run_in_bf16(op):
    assert op in LISTS["lower"]


@pytest.mark.parametrize("d_head, dtype, arch, masked, grouped, kernel", [
    # sm90 (H100, H200) puts cuDNN first (check_prefer_cudnn_attention): bf16, 8 | d_h ≤ 256
    (64, "bf16", "sm90", False, False, "cudnn"),     # GPT-2 XL's heads: what an H200 ran (16 bytes of RNG state)
    (128, "bf16", "sm90", False, True, "cudnn"),     # Llama-3-8B: cuDNN takes grouped K and V
    (128, "bf16", "sm90", True, False, "cudnn"),     # and a mask of its own (Mistral's window)
    (4, "bf16", "sm90", False, False, "flash"),      # 8 ∤ d_h: cuDNN refuses, flash pads to 8
    (320, "bf16", "sm90", False, False, "efficient"),  # over 256: neither cuDNN nor flash
    (64, "bf16", "sm100", False, False, "cudnn"),
    (192, "bf16", "sm100", False, False, "flash"),   # cuDNN's limit is 128 off sm90
    # sm80 (A100): flash first
    (64, "bf16", "sm80", False, False, "flash"),
    (128, "bf16", "sm80", False, True, "flash"),     # flash takes grouped K and V as they are
    (128, "bf16", "sm80", True, False, "efficient"),  # a mask: no flash
    (200, "bf16", "sm89", False, False, "efficient"),  # (192, 224] trains no flash on sm86/89/120
    (200, "bf16", "sm80", False, False, "flash"),
    (64, "fp32", "sm80", False, False, "efficient"),  # no flash in fp32
    (128, "fp32", "sm90", False, True, "math"),      # the memory-efficient kernel has no GQA
    (6, "fp32", "sm80", False, False, "math"),       # 4 ∤ d_h from sm80 in fp32
    # sm75 (T4): no flash, no cuDNN, no bf16 in the memory-efficient kernel
    (64, "bf16", "sm75", False, False, "math"),
    (6, "fp32", "sm75", False, False, "efficient"),  # fp32 alignment 1 below sm80
])
def test_the_kernel_sdpa_picks_by_the_card(d_head, dtype, arch, masked, grouped, kernel):
    assert attention_kernel(d_head, dtype, arch, masked=masked, grouped=grouped, keys=1024) == kernel


def test_cudnn_needs_more_than_one_key():
    assert attention_kernel(64, "bf16", "sm90", keys=1) == "flash"


def test_the_card_sets_the_kernel_and_a_reader_may_name_another():
    from calc.inputs import parse_inputs
    assert parse_inputs({"gpu": "t4"}).setup.arch == "sm75"
    assert parse_inputs({"gpu": "a100-80gb"}).setup.arch == "sm80"
    assert parse_inputs({}).setup.arch == "sm90"  # the H100 80GB
    assert parse_inputs({"gpu": "t4", "arch": "sm90"}).setup.arch == "sm90"


def test_cudnn_keeps_eight_bytes_of_rng_state_a_layer_fewer_than_flash():
    # the flash kernel keeps a uint64[2] seed-and-offset and an unused uint64 scalar (24
    # bytes), cuDNN an int64 seed and an int64 offset (16): what an H200 kept
    L = 48
    sm80, sm90 = (activation_table(PRESETS["cs336-gpt2-xl"], TrainingSetup(attention="flash", dtype="bf16", arch=arch))
                  .bytes_for_batch() for arch in ("sm80", "sm90"))
    assert sm80 - sm90 == L * (24 - 16)


def test_a_t4_runs_the_math_composite_in_fp32_for_bf16():
    # no fused kernel takes bf16 below sm80: the composite upcasts Q, K and V and keeps Q·√c,
    # K·√c, V (fp32 copies) and P (fp32), where cuDNN keeps bf16 Q, K, V, its output, the
    # fp32 log-sum-exp and 16 bytes of RNG state; W_O's input is a copy either way
    L, s, d, h = 48, 1024, 1600, 25
    t4, h200 = (activation_table(PRESETS["cs336-gpt2-xl"], TrainingSetup(attention="flash", dtype="bf16", arch=arch))
                .bytes_for_batch() for arch in ("sm75", "sm90"))
    assert t4 - h200 == L * (3 * 4 * s * d + 4 * h * s * s - (3 * 2 * s * d + 2 * s * d + 4 * h * s) - 16)


def test_flash_pads_narrow_heads_to_eight_features():
    # d_h = 4: SDPA pads Q, K and V to 8 features and the kernel's output is 8 wide too
    # (2·L·s·h·(8 − 4)·4 bytes more than unpadded tensors would take), then the output's
    # slice is copied for W_O
    narrow = PRESETS["cs336-gpt2-xl"].replace(d_model=200, heads=50)
    rows = {r.key: r for r in activation_table(narrow, TrainingSetup(attention="flash", dtype="bf16")).rows}
    L, s, h = 48, 1024, 50
    assert rows["q"].bytes == rows["k"].bytes == rows["v"].bytes == rows["flash-output"].bytes == L * s * h * 8 * 2
    assert rows["attention-output"].bytes == L * s * 200 * 2


def test_a_kernel_calc_has_not_derived_is_refused_naming_the_field():
    odd = PRESETS["cs336-gpt2-xl"].replace(d_model=300, heads=50)  # d_h = 6: fp32 takes PyTorch's math composite
    with pytest.raises(FieldError) as refused:
        activation_table(odd, TrainingSetup(attention="flash", dtype="fp32"))
    assert refused.value.field == "attention"
    assert activation_table(odd, TrainingSetup(attention="flash", dtype="fp32", device="cpu")).bytes_for_batch() > 0


def test_layer_norm_on_bf16_weights_keeps_fp32_statistics_on_cuda():
    # CUDA's layer_norm kernel returns mean and 1/σ in fp32 for bf16 input: 2·s·(4 − 2)
    # bytes more a norm than the CPU (two per block and the final one)
    gpt2 = PRESETS["gpt2-xl"].replace(implementation="reference", dropout=0.0)
    L, s = 48, 1024
    cpu, cuda = (activation_table(gpt2, TrainingSetup(dtype="bf16-master", device=device)).bytes_for_batch()
                 for device in ("cpu", "cuda"))
    assert cuda - cpu == (2 * L + 1) * 2 * s * 2


def test_cuda_dropout_keeps_one_byte_masks():
    # GPT-2 as Hugging Face runs it, dropout 0.1, eager attention, fp32: four masks a layer
    # (attention probabilities h·s², two residuals and, once, the embedding's s·d) — the CPU
    # keeps each as an fp32 noise tensor, CUDA as a bool: 3 bytes a value fewer
    gpt2 = PRESETS["gpt2-xl"]
    L, s, d, h = 48, 1024, 1600, 25
    cpu, cuda = (activation_table(gpt2, TrainingSetup(device=device)).bytes_for_batch() for device in ("cpu", "cuda"))
    assert gpt2.dropout == 0.1
    assert cpu - cuda == 3 * (L * (h * s * s + 2 * s * d) + s * d)
