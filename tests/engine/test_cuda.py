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


@pytest.mark.parametrize("d_head, dtype, masked, grouped, kernel", [
    (64, "bf16", False, False, "flash"),       # GPT-2 XL's heads, bf16: FlashAttention
    (128, "bf16", False, True, "flash"),       # Llama-3-8B: flash takes grouped K and V as they are
    (64, "fp32", False, False, "efficient"),   # no flash kernel in fp32
    (128, "fp32", False, True, "math"),        # the memory-efficient kernel has no GQA
    (128, "bf16", True, False, "efficient"),   # a mask of its own (Mistral's window): no flash
    (320, "bf16", False, False, "efficient"),  # flash takes head sizes up to 256
    (4, "bf16", False, False, "math"),         # too narrow for either fused kernel
])
def test_the_kernel_sdpa_picks(d_head, dtype, masked, grouped, kernel):
    assert attention_kernel(d_head, dtype, masked=masked, grouped=grouped) == kernel


def test_a_kernel_calc_has_not_derived_is_refused_naming_the_field():
    narrow = PRESETS["cs336-gpt2-xl"].replace(d_model=200, heads=50)  # d_h = 4
    with pytest.raises(FieldError) as refused:
        activation_table(narrow, TrainingSetup(attention="flash", dtype="bf16"))
    assert refused.value.field == "attention"
    assert activation_table(narrow, TrainingSetup(attention="flash", dtype="bf16", device="cpu")).bytes_for_batch() > 0


def test_cuda_dropout_keeps_one_byte_masks():
    # GPT-2 as Hugging Face runs it, dropout 0.1, eager attention, fp32: four masks a layer
    # (attention probabilities h·s², two residuals and, once, the embedding's s·d) — the CPU
    # keeps each as an fp32 noise tensor, CUDA as a bool: 3 bytes a value fewer
    gpt2 = PRESETS["gpt2-xl"]
    L, s, d, h = 48, 1024, 1600, 25
    cpu, cuda = (activation_table(gpt2, TrainingSetup(device=device)).bytes_for_batch() for device in ("cpu", "cuda"))
    assert gpt2.dropout == 0.1
    assert cpu - cuda == 3 * (L * (h * s * s + 2 * s * d) + s * d)
