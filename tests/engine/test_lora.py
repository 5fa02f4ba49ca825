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
from calc.parameters import parameter_count

ROOT = Path(__file__).resolve().parents[2]
MEASURED = json.loads((ROOT / "validation" / "results-lora.json").read_text())
SHAPES = {name: ModelShape(**cfg) for name, cfg in MEASURED["shapes"].items()}
FULL = json.loads((ROOT / "validation" / "results.json").read_text())["cases"]


def lora_setup(step) -> TrainingSetup:
    qlora = step["dtype"] == "qlora"  # LoRA over the bf16 base, its blocks' linear layers in 4-bit NF4
    return TrainingSetup(batch=step["batch"], attention=step["attention"], checkpoint=step["checkpoint"],
                         dtype="bf16-master" if qlora else step["dtype"], device="cpu",
                         finetune="qlora" if qlora else "lora", lora_rank=step["rank"], lora_targets=step["targets"],
                         lora_dropout=step["dropout"], quant_type=step.get("quant_type", "nf4"),
                         double_quant=step.get("double_quant", True), prepare_kbit=step.get("prepared", False))


def step_shape(step) -> ModelShape:
    """The measured model: GPT-2's steps also set the model's own dropout and use_cache."""
    shape = SHAPES[step["shape"]]
    if "model_dropout" in step:
        shape = shape.replace(dropout=step["model_dropout"], use_cache=step["use_cache"])
    return shape


def step_id(step) -> str:
    four_bit = (f"-{step['quant_type']}{'-double' if step['double_quant'] else ''}"
                f"{'-prepared' if step['prepared'] else ''}") if "quant_type" in step else ""
    gpt2 = (f"gpt2-pdrop{step['model_dropout']}{'-cache' if step['use_cache'] else ''}-"
            if "model_dropout" in step else "")
    if step.get("implementation") == "reference" or step.get("tensors") == "fake":
        gpt2 = f"{step['shape']}-{step['attention']}-"
    return (f"{gpt2}B{step['batch']}-{step['checkpoint']}-{step['dtype']}{four_bit}-{step['targets'].replace(',', '+')}-"
            f"dropout{step['dropout']}")


@pytest.mark.parametrize("step", MEASURED["steps"], ids=step_id)
def test_what_autograd_keeps_under_lora_equals_peft_s_step_to_the_byte(step):
    table = activation_table(step_shape(step), lora_setup(step))
    assert table.bytes_for_batch() == step["activations"]


@pytest.mark.parametrize("step", MEASURED["steps"], ids=step_id)
def test_the_adapters_are_what_trains_and_the_base_is_frozen(step):
    shape, setup = step_shape(step), lora_setup(step)
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


def test_lora_on_gpt2_keeps_less_than_full_training_by_what_only_frozen_weights_needed():
    # GPT-2's small code, one sequence of 16 tokens, d = 32, fp32, SDPA, no dropout, no
    # cache, LoRA rank 4 on all-linear (c_attn, both c_proj and c_fc of both layers). Full
    # training keeps 124,428 bytes (validation/results.json). LoRA keeps no token ids and no
    # position ids (16 int64 each), no head input (the tied head is frozen: 16 · 32 fp32),
    # and in the first layer no attention-LayerNorm input, mean and 1/σ (16 · 32 + 2 · 16
    # fp32). What the frozen Conv1D layers kept for their weights' gradients (c_attn's and
    # c_fc's inputs, the GELU output) the adapters' A keep instead; it adds each adapter's
    # r-wide A output (4 · 2 · 16 · 4 fp32)
    full = next(c for c in FULL if c["name"] == "small-hf-gpt2" and c["shape"]["d_model"] == 32 and (
        c["batch"], c["attention"], c["checkpoint"], c["dtype"], c["shape"].get("dropout", 0.0),
        c["shape"].get("use_cache", False)) == (1, "flash", "none", "fp32", 0.0, False))
    lora = next(s for s in MEASURED["steps"] if s["shape"] == "small-hf-gpt2" and (
        s["batch"], s["checkpoint"], s["dtype"], s["targets"], s["dropout"], s["model_dropout"], s["use_cache"])
                == (1, "none", "fp32", "all-linear", 0.0, 0.0, False))
    dropped = 2 * 16 * 8 + 16 * 32 * 4 + (16 * 32 + 2 * 16) * 4
    added = 4 * 2 * 16 * 4 * 4
    assert full["activations"] == 124_428
    assert lora["activations"] == full["activations"] - dropped + added == 121_996


def _reference_step(**case) -> dict:
    """The measured reference-implementation LoRA step (B = 1 on the CS336 shape unless said)."""
    case = {"shape": "small-cs336", "batch": 1, **case}
    return next(s for s in MEASURED["steps"] if s.get("implementation") == "reference"
                and all(s[key] == value for key, value in case.items()))


def test_lora_on_the_reference_keeps_what_full_training_keeps_less_the_frozen_weights_needs():
    # the CS336 shape (s 16, d 32, d_ff 48, 4 heads, 2 layers, V 64), SDPA, fp32, rank 4 on
    # all seven linear layers, no dropout, per sequence in bytes:
    s, d, d_ff, h, L, V, r = 16, 32, 48, 4, 2, 64, 4
    norm = 4 * (s * d + s)                       # a norm's input and inverse RMS (no x·rms: the gain is frozen)
    kept = (
        (L - 1) * norm                           # the first layer's attention norm reads the frozen embedding's output
        + L * 4 * s * d                          # Q/K/V's input, kept once by their adapters' A
        + L * (3 * 4 * s * d + 4 * h * s + 4 * s * d)  # SDPA: Q, K, V, log-sum-exp, its output
        + L * 4 * s * d                          # o_proj's input (a copy of SDPA's output), kept by its A
        + L * norm                               # the feed-forward norm
        + L * 4 * s * d                          # w1/w3's input, kept by their A
        + L * 3 * 4 * s * d_ff                   # W1 x (SiLU), SiLU(W1 x) and W3 x (⊙)
        + L * 4 * s * d_ff                       # w2's input, kept by its A
        + L * 7 * 4 * s * r                      # each A's output, kept by its B
        + norm + 4 * s * V + 8 * s + 4           # final norm, log-probabilities, targets, NLL weight
    )
    assert kept == 70_020
    step = _reference_step(attention="flash", checkpoint="none", dtype="fp32", targets="all-linear", dropout=0.0)
    assert step["activations"] == kept
    shape = SHAPES["small-cs336"]
    assert activation_table(shape, lora_setup(step)).bytes_for_batch() == kept


def test_attention_written_out_keeps_less_in_the_first_layer_when_k_proj_is_not_targeted():
    # LoRA on Q and V: the first layer's K needs no gradient, so QKᵀ keeps K (for Q's
    # gradient) but not Q. Written out: Q (one layer), K, the mask, P, V (two layers)
    # against SDPA's Q, K, V, log-sum-exp and output (two layers), in bytes
    s, d, h, L = 16, 32, 4, 2
    explicit = 4 * s * d * (1 + L + L) + s * s + L * 4 * h * s * s
    sdpa = L * (3 * 4 * s * d + 4 * h * s + 4 * s * d)
    case = dict(checkpoint="none", dtype="fp32", targets="q_proj,v_proj", dropout=0.0)
    measured = (_reference_step(attention="explicit", **case)["activations"]
                - _reference_step(attention="flash", **case)["activations"])
    assert measured == explicit - sdpa == 1_792


def test_the_seed_s_model_at_rank_8_on_every_linear_layer_trains_14_131_200_values():
    # 48 layers · 8 · (4 · (1,600 + 1,600) for Q, K, V, O + 2 · (1,600 + 6,400) for w1, w3
    # + (6,400 + 1,600) for w2)
    setup = TrainingSetup(finetune="lora", lora_rank=8, lora_targets="all-linear", attention="explicit")
    assert adapter_count(PRESETS["cs336-gpt2-xl"], setup) == 48 * 8 * (4 * 3_200 + 3 * 8_000) == 14_131_200


def test_a_lora_step_on_the_reference_says_its_backward_is_a_stated_bound_not_a_walk():
    # the walked backward program (timeline-measured) is full training's: it makes every
    # weight's gradient, which LoRA's frozen weights never get
    from calc.peak import moments_table
    inputs = parse_inputs({"preset": "cs336-gpt2-xl", "context": "1024", "finetune": "lora", "device": "cpu"})
    notes = " ".join(moments_table(inputs.shape, inputs.setup).notes)
    assert "stated upper bound" in notes and "Walked op by op" not in notes
    full = " ".join(moments_table(inputs.shape, inputs.setup.replace(finetune="full")).notes)
    assert "Walked op by op" in full


def test_gpt2_s_adapter_count_equals_what_peft_prints():
    # peft's print_trainable_parameters for gpt2 with LoraConfig(r=8, target_modules=["c_attn"]):
    # "trainable params: 294,912 || all params: 124,734,720": 12 layers · 8 · (768 + 3 · 768)
    setup = TrainingSetup(finetune="lora", lora_rank=8, lora_targets="c_attn", attention="flash")
    assert adapter_count(PRESETS["gpt2-small"], setup) == 12 * 8 * (768 + 3 * 768) == 294_912
    assert parameter_count(PRESETS["gpt2-small"]) + 294_912 == 124_734_720
    # all-linear adds both c_proj layers and c_fc: 8 · ((768 + 768) + (768 + 3,072) + (3,072 + 768)) a layer
    every = setup.replace(lora_targets="all-linear")
    assert adapter_count(PRESETS["gpt2-small"], every) == 294_912 + 12 * 8 * (2 * 768 + 2 * (768 + 3_072))


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
    ({"preset": "gpt2-small", "finetune": "qlora", "attention": "flash"}, "finetune"),
    ({"preset": "gpt2-small", "finetune": "lora", "attention": "flash", "dtype": "bf16-master"}, "dtype"),
    ({"preset": "gpt2-small", "finetune": "lora", "attention": "flash", "lora_targets": "q_proj"}, "lora_targets"),
    ({"preset": "gpt2-small", "finetune": "lora", "attention": "flash", "lora_targets": "c_fc"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "lora_targets": "c_attn"}, "lora_targets"),
    ({"preset": "cs336-gpt2-xl", "implementation": "scratch", "finetune": "lora"}, "finetune"),
    ({"preset": "cs336-gpt2-xl", "finetune": "lora", "norm": "layernorm"}, "implementation"),
    ({"preset": "cs336-gpt2-xl", "finetune": "lora", "checkpoint": "selective"}, "checkpoint"),
    ({"preset": "cs336-gpt2-xl", "finetune": "qlora", "dtype": "bf16-master"}, "finetune"),
    ({"preset": "cs336-gpt2-xl", "finetune": "lora", "lora_targets": "gate_proj"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "lora_targets": "lm_head"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "lora_targets": "gate_proj,up_proj"}, "lora_targets"),
    ({"finetune": "lora", "attention": "flash", "tp": "2"}, "finetune"),
    ({"finetune": "qlora", "dtype": "fp32"}, "dtype"),
    ({"finetune": "lora", "attention": "flash", "prepare_kbit": "true"}, "prepare_kbit"),
    ({"finetune": "qlora", "quant_type": "int4"}, "quant_type"),
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


def test_qlora_keeps_what_lora_over_the_bf16_base_keeps():
    # bitsandbytes' MatMul4Bit keeps the packed weight, which is a parameter, and nothing of its
    # input: peft's LoRA over the 4-bit base saves exactly what it saves over the bf16 one
    qlora = [s for s in MEASURED["steps"] if s["dtype"] == "qlora" and not s["prepared"] and s["quant_type"] != "int8"]
    bf16 = {_case(s): s["activations"] for s in MEASURED["steps"] if s["dtype"] == "bf16-master"}
    assert qlora and all(s["activations"] == bf16[_case(s)] for s in qlora)
    assert {(s["quant_type"], s["double_quant"]) for s in qlora} == {
        ("nf4", True), ("nf4", False), ("fp4", True), ("fp4", False)}  # whatever the 4-bit type and scales


def _case(step) -> tuple:
    return step["shape"], step["batch"], step["checkpoint"], step["targets"], step["dropout"]


def test_an_int8_base_keeps_each_int8_layer_s_input_even_under_checkpointing():
    # bitsandbytes' int8 matmul keeps its input on its ctx wherever a gradient flows through
    # it, past saved-tensor hooks and so past checkpointing. Small Llama shape (s 16, d 32,
    # d_ff 48, two layers), bf16 inputs, per sequence: Q/K/V's input s·d, gate/up's s·d,
    # down_proj's s·d_ff, and o_proj's s·d, which without checkpointing is SDPA's output,
    # kept already; without checkpointing the first layer's Q/K/V input needs no gradient
    s, d, d_ff = 16, 32, 48
    checkpointed = 2 * 2 * (s * d + s * d + s * d + s * d_ff)
    not_checkpointed = 2 * (s * d + s * d_ff) + 2 * (s * d + s * d + s * d_ff)
    assert (checkpointed, not_checkpointed) == (9_216, 6_144)
    int8 = [s for s in MEASURED["steps"] if s.get("quant_type") == "int8" and not s["prepared"]]
    bf16 = {_case(s): s["activations"] for s in MEASURED["steps"] if s["dtype"] == "bf16-master"}
    assert len(int8) == 16
    for step in int8:
        added = checkpointed if step["checkpoint"] == "block" else not_checkpointed
        assert step["activations"] - bf16[_case(step)] == added * step["batch"]


def test_prepare_model_for_kbit_training_checkpoints_reentrantly_so_the_int8_inputs_go():
    # prepared, the stream is fp32 and the int8 matmul keeps fp32 inputs (4 bytes a value):
    # without checkpointing Q/K/V's (not in the first layer), gate/up's and down_proj's,
    # less those the adapters keep themselves (fp32, no dropout: the same tensors; all-linear
    # targets all three, Q and V the first); prepare_model_for_kbit_training's checkpointing
    # is PyTorch's reentrant kind, whose forward builds no graph: nothing more is kept
    s, d, d_ff = 16, 32, 48
    every = 4 * (s * d + 2 * (s * d + s * d_ff))
    added = {("none", "all-linear", 0.0): 0, ("none", "q_proj,v_proj", 0.0): every - 4 * s * d}
    assert every == 12_288
    prepared = [s for s in MEASURED["steps"] if s.get("quant_type") == "int8" and s["prepared"]]
    fp32 = {_case(s): s["activations"] for s in MEASURED["steps"] if s["dtype"] == "fp32"}
    assert len(prepared) == 16
    for step in prepared:
        expected = 0 if step["checkpoint"] == "block" else added.get(
            (step["checkpoint"], step["targets"], step["dropout"]), every)
        assert step["activations"] - fp32[_case(step)] == expected * step["batch"]


def test_an_int8_weight_takes_a_byte_a_value_and_an_fp32_scale_a_row():
    # the small Llama shape's linear layers (d_in × d_out): Q and O 32 × 32, K and V 32 × 16,
    # gate and up 32 × 48, down 48 × 32; bitsandbytes keeps an int8 a value and an fp32
    # scale for each of the 224 output rows of a layer; two layers
    layer = (2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * 48) + 4 * (32 + 16 + 16 + 32 + 48 + 48 + 32)
    assert layer == 8_576
    step = next(s for s in MEASURED["steps"] if s.get("quant_type") == "int8")
    assert step["quantized_bytes"] == 2 * layer


def test_llama_3_8b_over_an_int8_base_holds_its_linear_weights_in_a_byte_each():
    # 6,979,321,856 linear weights (test_llama_3_8b_qlora_holds_its_linear_weights_in_4_bits),
    # a byte each, and an fp32 scale for each layer's 43,008 output rows (Q and O 4,096, K and
    # V 1,024, gate and up 14,336, down 4,096); the rest of the base bf16, the adapters fp32
    scales = 32 * 4 * (4096 + 1024 + 1024 + 4096 + 14336 + 14336 + 4096)
    assert 6_979_321_856 + scales == 6_984_826_880
    setup = TrainingSetup(finetune="qlora", quant_type="int8", lora_rank=16, attention="flash", dtype="bf16-master")
    assert lora_states(PRESETS["llama-3-8b"], setup)[0] == (2 * (8_030_261_248 - 6_979_321_856) + 6_984_826_880
                                                            + 4 * 41_943_040)


def test_on_cuda_an_int8_base_says_its_outlier_columns_are_not_counted():
    inputs = parse_inputs({"preset": "llama-3-8b", "finetune": "qlora", "quant_type": "int8", "device": "cuda"})
    assert any("outlier columns" in note for note in activation_table(inputs.shape, inputs.setup).notes)
    on_cpu = inputs.setup.replace(device="cpu")
    assert not any("outlier" in note for note in activation_table(inputs.shape, on_cpu).notes)


def test_qlora_prepared_for_kbit_training_keeps_what_lora_over_an_fp32_base_keeps():
    # prepare_model_for_kbit_training casts the embeddings, norms and head to fp32: the
    # stream is fp32, bitsandbytes' 4-bit layers cast their bf16 output back to their input's
    # fp32, and the adapters see fp32 inputs, as over an fp32 base; MatMul4Bit keeps nothing
    prepared = [s for s in MEASURED["steps"] if s["dtype"] == "qlora" and s["prepared"] and s["quant_type"] != "int8"]
    fp32 = {_case(s): s["activations"] for s in MEASURED["steps"] if s["dtype"] == "fp32"}
    assert len(prepared) == 16 and all(s["activations"] == fp32[_case(s)] for s in prepared)


def test_llama_3_8b_qlora_prepared_holds_its_other_weights_in_fp32():
    # the 1,050,939,392 weights outside the blocks' linear layers (two 128,256 · 4,096
    # embeddings, 65 norms of 4,096) in fp32 instead of bf16: 2,101,878,784 bytes more
    assert 2 * 128_256 * 4_096 + 65 * 4_096 == 1_050_939_392
    inputs = parse_inputs({"preset": "llama-3-8b", "finetune": "qlora", "lora_rank": "16"})
    weights = lora_states(inputs.shape, inputs.setup)[0]
    assert lora_states(inputs.shape, inputs.setup.replace(prepare_kbit=True))[0] - weights == 2 * 1_050_939_392


def test_fp4_takes_nf4_s_bytes_and_single_quantisation_keeps_fp32_scales():
    # bitsandbytes' 4-bit weights, measured one tensor at a time. 65 values: 33 bytes of
    # packed pairs and the 4-bit code (16 fp32), whatever the type; the scales of its two
    # 64-value blocks in fp32 (2 · 4) without double quantisation, or in uint8 (2) with
    # the nested quantisation's offset (1 fp32), its one scale (1 fp32) and code (256 fp32)
    from calc.lora import four_bit_bytes
    four_bit = MEASURED["four_bit"]
    at_65 = four_bit["sizes"].index(65)
    assert four_bit["nf4"][at_65] == four_bit["fp4"][at_65] == 33 + 16 * 4 + 2 * 4 == 105
    assert four_bit["nf4-double"][at_65] == four_bit["fp4-double"][at_65] == 33 + 16 * 4 + 2 + 4 + 4 + 256 * 4
    for kind in ("nf4", "fp4"):
        assert [four_bit_bytes(n, double_quant=False) for n in four_bit["sizes"]] == four_bit[kind]
        assert [four_bit_bytes(n, double_quant=True) for n in four_bit["sizes"]] == four_bit[kind + "-double"]


def test_a_4_bit_weight_takes_half_a_byte_a_value_and_its_scales():
    # the small Llama shape: per layer Q and O 32 · 32 values, K and V 32 · 16, the three
    # feed-forward matrices 32 · 48; bitsandbytes stores each in NF4, two values a byte, one
    # uint8 scale a block of 64 values, and per tensor the NF4 code (16 fp32), the nested
    # quantisation's offset (1 fp32), its scales (1 fp32 a block of 256 scales) and its code
    # (256 fp32); two layers
    def nf4(values):
        blocks = -(-values // 64)
        return values // 2 + blocks + 16 * 4 + 4 + 4 * -(-blocks // 256) + 256 * 4
    layer = sum(nf4(v) for v in (1024, 512, 512, 1024, 1536, 1536, 1536))
    step = next(s for s in MEASURED["steps"] if s["dtype"] == "qlora")
    assert step["quantized_bytes"] == 2 * layer == 23_264


def test_llama_3_8b_qlora_holds_its_linear_weights_in_4_bits():
    # 6,979,321,856 of Llama-3-8B's 8,030,261,248 weights are the blocks' linear layers
    # (32 layers · (2 · 4,096² + 2 · 4,096 · 1,024 + 3 · 4,096 · 14,336)); in NF4 each
    # tensor of n values takes n/2 bytes, n/64 uint8 scales, an fp32 nested scale for every
    # 256 scales, and 1,092 bytes of codes and offset (16 + 256 fp32, 1 fp32). The
    # embeddings, norms and head stay bf16; the adapters fp32 with their gradients and AdamW
    linear = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    assert linear == 6_979_321_856

    def nf4(values):
        blocks = values // 64
        return values // 2 + blocks + 4 * -(-blocks // 256) + 1092
    quantized = 32 * (2 * nf4(4096 * 4096) + 2 * nf4(4096 * 1024) + 3 * nf4(4096 * 14336))
    setup = TrainingSetup(finetune="qlora", lora_rank=16, attention="flash", dtype="bf16-master")
    assert lora_states(PRESETS["llama-3-8b"], setup) == (2 * (8_030_261_248 - linear) + quantized + 4 * 41_943_040,
                                                         4 * 41_943_040, 8 * 41_943_040)


def test_a_qlora_reader_who_names_only_the_adapters_gets_transformers_defaults():
    # the command issue 25 asks for names no attention and no dtype: SDPA is transformers'
    # default, and QLoRA computes in bf16 over a bf16 base; a reader who names others is told
    setup = parse_inputs({"preset": "llama-3-8b", "finetune": "qlora"}).setup
    assert (setup.attention, setup.dtype) == ("flash", "bf16-master")
    with pytest.raises(InputError) as error:
        parse_inputs({"preset": "llama-3-8b", "finetune": "qlora", "attention": "explicit"})
    assert "attention" in error.value.errors


def test_the_qlora_command_prints_its_states_peak_and_largest_batch(capsys):
    from calc.cli import main
    assert main(["--preset", "llama-3-8b", "--finetune", "qlora", "--lora-rank", "16", "--lora-targets", "all-linear",
                 "--context", "4096", "--checkpoint", "block", "--gpu", "rtx-4090"]) == 0
    out = capsys.readouterr().out
    assert "Frozen linear weights of the blocks in 4-bit NF4" in out
    assert "Peak of the training step on one GPU: " in out and "Largest batch in an RTX 4090" in out


def test_the_side_by_side_shows_qlora_s_4_bit_base_beside_lora_s_bf16_one():
    # Llama 3 8B, rank 16 on all-linear: LoRA's bf16 base is 2 · 8,030,261,248 bytes, QLoRA's
    # 2 · 1,050,939,392 (embeddings, norms, head) + 3,600,661,376 (its 4-bit linear weights,
    # test_llama_3_8b_qlora_holds_its_linear_weights_in_4_bits), each beside the adapters'
    # 4 · 41,943,040 fp32
    from calc.comparisons import finetune_grid
    inputs = parse_inputs({"preset": "llama-3-8b", "context": "4096", "checkpoint": "block", "finetune": "lora",
                           "lora_rank": "16", "dtype": "bf16-master", "gpu": "rtx-4090", "unit": "GB"})
    grid = finetune_grid(inputs)
    weights = next(r.cells for r in grid.rows if r.key == "parameters")
    assert weights[2:] == ("16.228 GB", "5.870 GB")
    assert (2 * 8_030_261_248 + 4 * 41_943_040, 2 * 1_050_939_392 + 3_600_661_376 + 4 * 41_943_040) == \
        (16_228_294_656, 5_870_312_320)


def test_adamw_8bit_s_state_equals_bitsandbytes_measured():
    # bitsandbytes' AdamW8bit after one step on CPU tensors, each size alone and all together:
    # from 4,096 values on, two uint8 moments and an fp32 scale for each 256 values of each
    # moment, beside two 256-entry fp32 maps the optimizer shares; below, two fp32 moments.
    # 4,096 values alone: 2 · 4,096 + 2 · 16 · 4 + 2 · 256 · 4 = 10,368 bytes
    from calc.lora import adamw_8bit_bytes
    measured = MEASURED["adamw_8bit"]
    assert [adamw_8bit_bytes((n,)) for n in measured["sizes"]] == measured["each"]
    assert adamw_8bit_bytes(tuple(measured["sizes"])) == measured["together"]
    assert measured["each"][measured["sizes"].index(4096)] == 2 * 4096 + 2 * 16 * 4 + 2 * 256 * 4


@pytest.mark.parametrize("step", MEASURED["steps"][:8], ids=step_id)
def test_lora_s_adamw_8bit_state_is_what_it_kept_for_the_adapters(step):
    shape, setup = step_shape(step), lora_setup(step).replace(optimizer="adamw-8bit")
    assert lora_states(shape, setup)[2] == step["adamw_8bit_bytes"]


def test_full_training_with_8_bit_adamw_keeps_its_state_for_every_parameter():
    # Llama 3 8B's 8,030,261,248 parameters lie in tensors of at least 4,096 values (the
    # norms' gains are 4,096; every other tensor is a matrix), each a multiple of 256: two
    # uint8 moments (2 bytes a value), an fp32 scale a block of 256 for each (P / 32
    # bytes), and the two shared 256-entry fp32 maps
    P = 8_030_261_248
    state = 2 * P + 8 * P // 256 + 2 * 256 * 4
    assert state == 16_311_470_208
    inputs = parse_inputs({"preset": "llama-3-8b", "dtype": "bf16", "optimizer": "adamw-8bit", "device": "cuda"})
    from calc.report import summary
    s = summary(inputs.shape, inputs.setup)
    assert (s["bytes"]["parameters"], s["bytes"]["gradients"], s["bytes"]["optimizer"]) == (4 * P, 4 * P, state)
    # paged on a GPU: every tensor but the 65 norms' gains (4,096 values, under 100,000)
    # keeps its moments in unified memory
    paged = summary(inputs.shape, inputs.setup.replace(optimizer="paged-adamw-8bit"))["bytes"]
    assert paged["paged_optimizer"] == 2 * (P - 65 * 4_096) == 16_059_990_016
    assert paged["optimizer"] == state - paged["paged_optimizer"]
    assert s["bytes"]["peak"] - paged["peak"] == paged["paged_optimizer"]  # unified memory is not the allocator's


def test_8_bit_adamw_on_ddp_replicas_keeps_the_whole_state_on_each():
    one = parse_inputs({"preset": "llama-3-8b", "dtype": "bf16", "optimizer": "adamw-8bit"})
    four = parse_inputs({"preset": "llama-3-8b", "dtype": "bf16", "optimizer": "adamw-8bit", "dp": "4"})
    from calc.layout.per_gpu import per_gpu_table
    from calc.report import summary
    held = {r.key: r.bytes for r in per_gpu_table(four.shape, four.setup).rows}
    assert held["optimizer"] == summary(one.shape, one.setup)["bytes"]["optimizer"] == 16_311_470_208


@pytest.mark.parametrize("params, field", [
    ({"dtype": "bf16-master"}, "optimizer"),  # bitsandbytes keeps no fp32 master copy
    ({"dp": "2", "zero": "1"}, "optimizer"), ({"tp": "2"}, "optimizer"), ({"pp": "2"}, "optimizer"),
    ({"dp": "2", "framework": "fsdp2"}, "optimizer")])
@pytest.mark.parametrize("optimizer", ["adamw-8bit", "paged-adamw-8bit"])
def test_8_bit_adamw_is_refused_where_calc_does_not_model_it(optimizer, params, field):
    with pytest.raises(InputError) as error:
        parse_inputs({"preset": "llama-3-8b", "optimizer": optimizer, **params})
    assert field in error.value.errors


def test_paged_adamw_8bit_on_the_cpu_keeps_adamw_8bit_s_state():
    # bitsandbytes falls back to ordinary buffers on the CPU: measured, the same bytes
    from calc.lora import adamw_8bit_bytes
    measured = MEASURED["adamw_8bit"]
    assert measured["paged_together"] == measured["together"] == adamw_8bit_bytes(tuple(measured["sizes"]))
    shape, step = SHAPES["small-hf-llama"], MEASURED["steps"][0]
    setup = lora_setup(step).replace(optimizer="paged-adamw-8bit")
    assert lora_states(shape, setup)[2] == step["adamw_8bit_bytes"]


def test_paged_adamw_8bit_on_a_gpu_pages_the_moments_of_tensors_of_100_000_values_or_more():
    # Llama 3 8B, rank 16 on all-linear: per layer gate_proj's and up_proj's B (14,336 · 16)
    # and down_proj's A (16 · 14,336) hold 229,376 values each, at least 100,000; every other
    # adapter is 16 · 4,096 or 16 · 1,024. Their two uint8 moments, 2 · 3 · 229,376 bytes a
    # layer, go to unified memory (bitsandbytes' get_state_buffer); their fp32 block scales
    # and the rest of AdamW8bit's 85,198,848 bytes (2 · 41,943,040 moments, 8 bytes a block
    # of 256, two 256-entry fp32 maps) stay with PyTorch's allocator
    paged = 32 * 2 * 3 * 229_376
    whole = 2 * 41_943_040 + 8 * 41_943_040 // 256 + 2 * 256 * 4
    assert (paged, whole) == (44_040_192, 85_198_848)
    inputs = parse_inputs({"preset": "llama-3-8b", "finetune": "qlora", "lora_rank": "16", "context": "4096",
                           "checkpoint": "block", "optimizer": "paged-adamw-8bit"})
    assert lora_states(inputs.shape, inputs.setup)[2] == whole - paged
    from calc.report import summary
    s = summary(inputs.shape, inputs.setup)
    assert (s["bytes"]["optimizer"], s["bytes"]["paged_optimizer"]) == (whole - paged, paged)
    unpaged = summary(inputs.shape, inputs.setup.replace(optimizer="adamw-8bit"))
    assert unpaged["bytes"]["peak"] - s["bytes"]["peak"] == paged  # unified memory is not the allocator's


def _forget_everything() -> None:
    """Empty every cache calc keeps: each lru_cache of its modules and its remembered answers."""
    from calc.site.browser import forget_everything
    forget_everything()


@pytest.mark.parametrize("start, change", [
    *(({"finetune": "qlora"}, change) for change in ({"prepare_kbit": True}, {"double_quant": False},
                                                     {"quant_type": "fp4"}, {"optimizer": "paged-adamw-8bit"},
                                                     {"lora_dropout": 0.1}, {"lora_rank": 64})),
    ({}, {"freeze_embeddings": True}), ({"freeze_embeddings": "true"}, {"frozen_blocks": 31}),
])
def test_a_fine_tuning_setting_s_peak_does_not_depend_on_what_was_asked_before(start, change):
    # calc remembers answers by the fields they read: a setting left out of those keys would
    # hand back the previous setup's answers. The setting asked right after the default
    # equals the setting asked with every cache empty
    from calc.fit import peak_bytes
    inputs = parse_inputs({"preset": "llama-3-8b", "context": "4096", "checkpoint": "none", "attention": "flash",
                           **start})
    _forget_everything()
    peak_bytes(inputs.shape, inputs.setup)
    after = peak_bytes(inputs.shape, inputs.setup.replace(**change))
    _forget_everything()
    assert peak_bytes(inputs.shape, inputs.setup.replace(**change)) == after


@pytest.mark.parametrize("before, after", [("h100-80gb", "t4"), ("t4", "h100-80gb"), ("a100-40gb", "rtx-3090")])
def test_a_card_s_peak_does_not_depend_on_the_card_asked_before(before, after):
    # the card decides the attention kernel (a T4, sm75, has no bf16 flash kernel: PyTorch's
    # math path keeps the probabilities), so answers remembered for one card are not
    # another's: the card asked right after another equals the card asked with every cache
    # empty (a reader switching cards on the page asks exactly this)
    from calc.fit import peak_bytes
    params = {"preset": "gpt2-medium", "dtype": "bf16", "attention": "flash", "device": "cuda"}
    first, second = (parse_inputs({**params, "gpu": gpu}) for gpu in (before, after))
    _forget_everything()
    peak_bytes(first.shape, first.setup)
    asked_after = peak_bytes(second.shape, second.setup)
    _forget_everything()
    assert peak_bytes(second.shape, second.setup) == asked_after


def test_a_pasted_config_fine_tunes_with_lora_and_qlora():
    # Qwen2-7B's config.json (28 layers, d = 3,584, 4 KV heads of 128, d_ff = 18,944): rank
    # 16 on all-linear is 28 · 16 · (2 · (3,584 + 3,584) + 2 · (3,584 + 512) + 3 · (3,584 + 18,944))
    # adapters, the count peft prints ("trainable params: 40,370,176 || all params:
    # 7,655,986,688"), beside Qwen2-7B's 7,615,616,512 weights
    config = json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 152064,
                         "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                         "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 32768,
                         "tie_word_embeddings": False, "torch_dtype": "bfloat16"})
    assert 28 * 16 * (2 * (3584 + 3584) + 2 * (3584 + 512) + 3 * (3584 + 18944)) == 40_370_176
    for finetune in ("lora", "qlora"):
        inputs = parse_inputs({"hf_config": config, "finetune": finetune, "context": "2048"})
        assert adapter_count(inputs.shape, inputs.setup) == 40_370_176
        assert adapter_count(inputs.shape, inputs.setup) + 7_615_616_512 == 7_655_986_688
        assert parameter_count(inputs.shape) == 7_615_616_512
