"""calc's `autograd` accounting against PyTorch's own saved tensors, and by hand.

validation/results.json holds what `python -m validation.run` measured with saved-tensor
hooks (torch and transformers on the CPU, storages de-duplicated, parameters apart) for
three implementations: calc's reference model, a from-scratch CS336 model in every way
of writing its softmax, cross-entropy and pick, and Hugging Face transformers (GPT-2,
Llama, Mistral, Qwen2). calc must equal it to the byte on every case; these tests need
no torch.

validation/results-cuda-derived.json holds the same grid run under CUDA's rules
(`python -m validation.run --device cuda-derived`: CUDA autocast's op lists read from the
installed torch, the CUDA attention kernels' meta functions, the fused dropout), which
calc's device "cuda" must equal; validation/results-cuda.json, where a GPU measured it,
likewise.
"""

import json
from pathlib import Path

import pytest

from calc import PRESETS, ModelShape, TrainingSetup, activation_table, parameter_count
from calc.errors import FieldError
from calc.fixed import weight_copy_count
from calc.inputs import parse_inputs

VALIDATION = Path(__file__).resolve().parents[2] / "validation"
RESULTS = json.loads((VALIDATION / "results.json").read_text())
CUDA_RESULTS = [json.loads(path.read_text()) for path in (VALIDATION / "results-cuda-derived.json",
                                                           VALIDATION / "results-cuda.json") if path.exists()]
SEED = PRESETS["cs336-gpt2-xl"]


def case_id(case):
    shape = case["shape"]
    options = [shape.get("implementation", "reference")] + [f"{k}={shape[k]}" for k in (
        "softmax", "cross_entropy", "pick", "dropout", "use_cache") if k in shape]
    return f"{case['name']}-B{case['batch']}-{case['attention']}-{case['checkpoint']}-{case['dtype']}-{'-'.join(options)}"


def test_the_grid_covers_every_preset_as_it_runs_and_the_seed_model_three_ways():
    cases = RESULTS["cases"]
    seed_cases = {(c["attention"], c["checkpoint"], c["dtype"]) for c in cases
                  if c["name"] == "cs336-gpt2-xl" and c["batch"] == 1}
    assert len(seed_cases) == 12  # 2 attentions × 2 checkpointings × 3 precisions
    for name, shape in PRESETS.items():
        implementation = shape.implementation
        measured = {(c["batch"], c["attention"], c["checkpoint"], c["dtype"], c["shape"].get("use_cache", False),
                     c["shape"].get("dropout", 0.0)) for c in cases
                    if ModelShape(**c["shape"]).replace(use_cache=shape.use_cache, dropout=shape.dropout) == shape}
        expected = {(b, a, k, d, cache, drop) for b in (1, 2) for a in ("explicit", "flash") for k in ("none", "block")
                    for d in ("fp32", "bf16") for cache in {False, implementation == "hf"}
                    for drop in {0.0, shape.dropout}}
        assert expected <= measured, (name, implementation, sorted(expected - measured)[:3])
    implementations = {c["shape"].get("implementation", "reference") for c in cases if c["name"].startswith("cs336-gpt2-xl")}
    assert implementations == {"reference", "scratch", "hf"}


def _setup(case, device):
    return TrainingSetup(batch=case["batch"], attention=case["attention"], checkpoint=case["checkpoint"],
                         dtype=case["dtype"], device=device, arch=case.get("arch", "sm90"))


@pytest.mark.parametrize("case", RESULTS["cases"], ids=case_id)
def test_autograd_accounting_equals_pytorch_to_the_byte(case):
    shape, setup = ModelShape(**case["shape"]), _setup(case, "cpu")
    assert activation_table(shape, setup).bytes_for_batch() == case["activations"]
    assert 2 * weight_copy_count(shape, setup) == case["weight_copies"]


@pytest.mark.parametrize("case", [dict(c, results=r["device"]) for r in CUDA_RESULTS for c in r["cases"]],
                         ids=lambda c: f"{c['results']}-{c['arch']}-{case_id(c)}")
def test_cuda_rows_equal_pytorch_under_cudas_rules(case):
    shape, setup = ModelShape(**case["shape"]), _setup(case, "cuda")
    if "not_derived" in case:
        with pytest.raises(FieldError):
            activation_table(shape, setup)
        return
    assert activation_table(shape, setup).bytes_for_batch() == case["activations"]
    assert 2 * weight_copy_count(shape, setup) == case["weight_copies"]


def _key(case):
    return (case["name"], json.dumps(case["shape"], sort_keys=True), case["batch"], case["attention"],
            case["checkpoint"], case["dtype"])


def test_the_cuda_grid_is_the_cpu_grid_on_sm90_and_its_small_sdpa_cases_on_sm80_and_sm75():
    derived = CUDA_RESULTS[0]
    assert derived["device"] == "cuda-derived" and derived["torch"] == RESULTS["torch"]
    by_arch = {arch: sorted(_key(c) for c in derived["cases"] if c["arch"] == arch) for arch in ("sm90", "sm80", "sm75")}
    assert by_arch["sm90"] == sorted(map(_key, RESULTS["cases"]))
    small_sdpa = sorted(_key(c) for c in RESULTS["cases"] if c["attention"] == "flash" and c["tensors"] != "fake")
    assert by_arch["sm80"] == by_arch["sm75"] == small_sdpa
    assert not [c for c in derived["cases"] if "not_derived" in c]  # every case is derived now


def test_an_h200_measured_what_the_sm90_derivation_says_in_every_small_case():
    measured = json.loads((VALIDATION / "results-cuda.json").read_text())
    assert measured["gpu"] == "NVIDIA H200" and len(measured["cases"]) == 452
    derived = {_key(c): c for c in CUDA_RESULTS[0]["cases"] if c["arch"] == "sm90"}
    for case in measured["cases"]:
        assert case["arch"] == "sm90"
        figures = ("activations", "weight_copies", "saved_parameters")
        assert [case[k] for k in figures] == [derived[_key(case)][k] for k in figures], _key(case)


@pytest.mark.parametrize("name, counted", sorted(RESULTS["parameter_counts"].items()))
def test_a_config_json_gives_the_parameters_transformers_builds(name, counted):
    config = (VALIDATION / "hf_configs" / f"{name}.json").read_text()
    assert parameter_count(parse_inputs({"hf_config": config}).shape) == counted


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
    explicit = activation_table(SEED, TrainingSetup(attention="explicit", device="cpu")).bytes_for_batch()
    flash = activation_table(SEED, TrainingSetup(attention="flash", device="cpu")).bytes_for_batch()
    # explicit keeps P (h·s²) and the mask (s² bool); flash keeps log-sum-exp (h·s) and its
    # own output in head layout (s·d) beside the concatenated copy W_O keeps.
    assert explicit - flash == L * (4 * h * s * s - 4 * h * s - 4 * s * d) + s * s


def test_cuda_autocast_keeps_p_in_fp32_and_again_in_bf16_and_the_log_probabilities_twice():
    # CUDA autocast runs softmax in fp32 (AT_FORALL_FP32_SET_OPT_DTYPE in PyTorch's
    # autocast_mode.h): P is kept as fp32 by softmax and as a bf16 copy by P·V, 4 + 2 bytes
    # a value where CPU autocast keeps one bf16 P: 4·L·h·s² bytes more a sequence.
    # F.cross_entropy's composite gives log_softmax the logits' dtype, which autocast keeps
    # (bf16), and nll_loss, an fp32 op, keeps an fp32 copy: 2 + 4 bytes a log-probability
    # where CPU autocast keeps 4, 2·s·V bytes more: the bf16 copy of the logits' size an
    # H200 measured (+102,926,336 bytes for the seed's model).
    L, s, h, V = 48, 1024, 25, 50257
    cpu, cuda = (activation_table(SEED, TrainingSetup(dtype="bf16", device=device)).bytes_for_batch()
                 for device in ("cpu", "cuda"))
    assert 2 * s * V == 102_926_336
    assert cuda - cpu == 4 * L * h * s * s + 2 * s * V == 5_136_091_136


def test_cuda_fp32_sdpa_runs_the_memory_efficient_kernel():
    # fp32 has no flash kernel: the memory-efficient one pads its log-sum-exp to 32 rows
    # (1,024 is already a multiple), keeps an int64 seed and offset per call, and returns
    # its output in the layout W_O reads, so the separate copy of the output is not made.
    L, s, d = 48, 1024, 1600
    cpu, cuda = (activation_table(SEED, TrainingSetup(attention="flash", device=device)).bytes_for_batch()
                 for device in ("cpu", "cuda"))
    assert cpu - cuda == L * (4 * s * d - 16)


def test_per_block_checkpointing_keeps_block_inputs_only():
    L, s, d, V = 48, 1024, 1600, 50257
    kept = activation_table(SEED, TrainingSetup(checkpoint="block", attention="flash", device="cpu")).bytes_for_batch()
    head = 4 * (2 * s * d + s + s * d + s * V)
    assert kept == 4 * L * s * d + head + 8 * s + 8 * s + 4


def test_grouped_query_attention_keeps_k_and_v_after_repeating_them():
    llama3 = PRESETS["llama-3-8b"].replace(implementation="reference")
    as_mha = llama3.replace(kv_heads=llama3.heads)
    for attention in ("explicit", "flash"):
        setup = TrainingSetup(attention=attention)
        assert activation_table(llama3, setup).bytes_for_batch() == activation_table(as_mha, setup).bytes_for_batch()


def test_hugging_face_sdpa_keeps_k_and_v_unrepeated():
    # transformers passes enable_gqa=True to SDPA: K and V are kept with h_kv heads, not h,
    # which saves 2·L·s·(h − h_kv)·d_h fp32 values against multi-head attention (on the CPU;
    # on CUDA fp32 with enable_gqa takes the math kernel, the memory-efficient one having
    # no grouped-query attention)
    llama3, (L, s, h, kv, dh) = PRESETS["llama-3-8b"], (32, 8192, 32, 8, 128)
    as_mha = llama3.replace(kv_heads=h)
    setup = TrainingSetup(attention="flash", device="cpu")
    saved = activation_table(as_mha, setup).bytes_for_batch() - activation_table(llama3, setup).bytes_for_batch()
    assert saved == 4 * 2 * L * s * (h - kv) * dh
