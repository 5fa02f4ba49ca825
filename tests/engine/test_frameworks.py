"""Each framework's rules (calc.layout.frameworks), derived from its source, against its own
estimator where the two count the same thing, and each difference stated.

Megatron-LM (megatron/training/theoretical_memory_usage.py, `num_bytes_per_parameter`):
bf16 training keeps 18 bytes a parameter (2 bf16 + 4 fp32 main gradient + 4 fp32 main
parameter + 8 Adam), 6 + 12/dp with the distributed optimizer. DeepSpeed
(deepspeed/runtime/zero/stage_1_and_2.py, `estimate_zero2_model_states_mem_needs`, no
offload): 2Ψ + 18Ψ/N for ZeRO-2; stage3.py `estimate_zero3_model_states_mem_needs`:
4 × the largest layer + 18Ψ/N for ZeRO-3.
"""

import pytest

from calc import PRESETS, TrainingSetup, parameter_count
from calc.errors import FieldError
from calc.fixed import state_bytes
from calc.inputs import InputError, parse_inputs
from calc.layout.per_gpu import per_gpu_table
from calc.layout.split import check_layout, stages, zero_states
from calc.peak import buffer_parts, optimizer_temporaries

LLAMA = PRESETS["llama-2-7b"].replace(implementation="reference")
H, V, L, FFN = 4096, 32000, 32, 11008


def model_states(setup) -> int:
    """Parameters, gradients and optimizer state on the fullest stage's GPUs, in bytes."""
    here = max(stages(LLAMA, setup), key=lambda stage: stage.parameters)
    return sum(zero_states(here.parameters, setup.dp * setup.cp, setup.zero, state_bytes(setup)))


def megatron_estimate(tp: int, pp: int, dp: int, distributed: bool) -> float:
    """Megatron-LM's weight_and_optimizer_memory for Llama-2-7B, as its function computes
    it: tensor-parallel-sharded parameters (attention, MLP, the embedding and, untied on
    one stage, the output layer), replicated ones (the norms, the final norm included in
    the block and shared over the stages)."""
    attention, mlp, norms = 2 * H * H * 2, 2 * H * FFN * 3 / 2, 2 * H
    sharded = ((L * (attention + mlp)) / pp + H * V) / tp + (H * V / tp if pp == 1 else 0)
    replicated = (L * norms + H) / pp
    return (sharded + replicated) * (6 + 12 / dp if distributed else 18)


@pytest.mark.parametrize("tp, dp, distributed", [(1, 8, False), (1, 8, True), (2, 4, True), (4, 2, False), (8, 4, True)])
def test_megatron_s_estimator_equals_calc_on_one_pipeline_stage(tp, dp, distributed):
    setup = TrainingSetup(dtype="bf16-master", framework="megatron", tp=tp, dp=dp, zero=int(distributed))
    assert state_bytes(setup) == (2, 4, 12)  # bf16 weights, fp32 main gradients, fp32 main weights and Adam
    assert model_states(setup) == megatron_estimate(tp, 1, dp, distributed)


@pytest.mark.parametrize("tp, pp, dp", [(1, 2, 4), (2, 4, 2)])
def test_over_pipeline_stages_the_estimator_shares_the_final_norm_out(tp, pp, dp):
    # the estimator divides the final norm (H values, replicated over tp) among the pp
    # stages; calc keeps it whole on the last stage, the fullest (it holds the LM head)
    setup = TrainingSetup(dtype="bf16-master", framework="megatron", tp=tp, pp=pp, dp=dp, zero=1)
    assert model_states(setup) - megatron_estimate(tp, pp, dp, True) == (H - H / pp) * (6 + 12 / dp)


def test_gpt3_175b_on_megatron_needs_its_fp32_gradients():
    # tp 8, pp 8, dp 8 without the distributed optimizer: 18 bytes a parameter where the
    # textbook bf16 regime counted 16; the fullest stage's share of GPT-3 175B
    gpt3 = PRESETS["gpt2-xl"].replace(implementation="reference", layers=96, d_model=12288, heads=96, kv_heads=96,
                                     d_ff=49152, context=2048, max_positions=2048, dropout=0.0)
    textbook = TrainingSetup(dtype="bf16-master", tp=8, pp=8, dp=8)
    megatron = textbook.replace(framework="megatron")
    here = max(stages(gpt3, megatron), key=lambda stage: stage.parameters)
    assert sum(zero_states(here.parameters, 8, 0, state_bytes(megatron))) == 18 * here.parameters
    assert sum(zero_states(here.parameters, 8, 0, state_bytes(textbook))) == 16 * here.parameters


def test_deepspeed_zero2_at_its_step_is_its_estimator_and_the_flattened_copy():
    # calc: 2Ψ bf16 parameters + 2Ψ/N gradient partition + 12Ψ/N fp32 master and Adam, and at
    # the step the partition flattened (2Ψ/N, bf16) and its fp32 copy (4Ψ/N): 2Ψ + 20Ψ/N.
    # The estimator counts 2Ψ + 18Ψ/N: the fp32 copy, not the flattened bf16 one.
    setup = TrainingSetup(dtype="bf16-master", framework="deepspeed", dp=8, zero=2)
    P = parameter_count(LLAMA)
    held = model_states(setup) + optimizer_temporaries(LLAMA, setup)
    assert held == 2 * P + 20 * P // 8
    assert held - 2 * P // 8 == 2 * P + 18 * P // 8  # estimate_zero2_model_states_mem_needs, no offload


def test_deepspeed_zero1_gathers_into_the_parameters_themselves():
    rows = {r.key: r.bytes for r in per_gpu_table(LLAMA, TrainingSetup(dtype="bf16-master", dp=8, zero=1)).rows}
    assert rows["buffer-b-r"] == 2 * 500_000_000 and not [key for key in rows if key == "buffer-b-g"]


def test_megatron_keeps_no_buffer_beside_its_gradient_buffer():
    rows = {r.key for r in per_gpu_table(LLAMA, TrainingSetup(dtype="bf16-master", framework="megatron", dp=8,
                                                               zero=1)).rows}
    assert not {"buffer-b-d", "buffer-b-r", "buffer-b-p"} & rows


@pytest.mark.parametrize("params, field", [
    ({"framework": "ddp", "zero": "1", "dp": "2"}, "zero"),  # DDP does not shard
    ({"framework": "deepspeed", "dp": "2"}, "zero"),  # DeepSpeed's stage 0 is DDP's job here
    ({"framework": "megatron", "zero": "3", "dp": "2", "dtype": "bf16-master"}, "zero"),
    ({"framework": "megatron", "dtype": "bf16", "dp": "2"}, "dtype"),  # Megatron-LM does not use autocast
])
def test_what_a_framework_does_not_run_is_refused_on_its_field(params, field):
    with pytest.raises(InputError) as error:
        parse_inputs(params)
    assert list(error.value.errors) == [field]


def test_auto_is_ddp_without_zero_and_deepspeed_with_it():
    check_layout(LLAMA, TrainingSetup(dp=2))
    check_layout(LLAMA, TrainingSetup(dp=2, zero=3))
    with pytest.raises(FieldError):
        check_layout(LLAMA, TrainingSetup(dp=2, zero=3, framework="ddp"))


def test_fsdp2_pads_each_parameter_s_first_dimension_to_a_multiple_of_the_ranks():
    # GPT-2 XL's shape: its vocabulary's 50,257 rows over 2 ranks pad to 50,258 (one row of
    # 1,600 values); its positions (1,024 rows) and its block's widths divide evenly
    from calc.layout.frameworks.fsdp2_buffers import group_values
    gpt2 = PRESETS["gpt2-xl"]
    d = 1600
    root, block = group_values(gpt2, 2)
    assert root == 50_258 * d + 1_024 * d + 2 * d  # tied embedding, positions, final LayerNorm
    assert block == 2 * 2 * d + 3 * d * d + 3 * d + d * d + d + 4 * d * d + 4 * d + 4 * d * d + d


def test_fsdp2_holds_16_bytes_a_parameter_over_the_ranks_also_under_its_bf16_policy():
    from calc.layout.frameworks.fsdp2_buffers import sharded_states
    for dtype in ("fp32", "bf16-master"):
        setup = TrainingSetup(dtype=dtype, dp=8, zero=3, framework="fsdp2")
        weights, gradients, optimizer = sharded_states(LLAMA, setup, 8)
        P = parameter_count(LLAMA)  # every Llama-2-7B width divides by 8: no padding
        assert (weights, gradients, optimizer) == (4 * P // 8, 4 * P // 8, 8 * P // 8)


@pytest.mark.parametrize("fields, field", [
    (dict(zero=1, dp=2), "zero"),
    (dict(zero=3, dp=2, dtype="bf16"), "dtype"),
    (dict(zero=3, dp=2, tp=2), "framework"),
    (dict(zero=3, dp=2, pp=2, microbatches=2, virtual_stages=2), "virtual_stages"),
])
def test_what_calc_does_not_model_of_fsdp2_is_a_field_error(fields, field):
    with pytest.raises(FieldError) as error:
        check_layout(LLAMA, TrainingSetup(framework="fsdp2", **fields))
    assert error.value.field == field


def test_megatron_s_sequence_parallelism_gathers_into_one_buffer_kept_all_run():
    # Llama-2-7B's shape in the reference code, 4,096 tokens, 2 sequences, bf16 weights with
    # an fp32 master, tp 4 with sequence parallelism: Megatron-LM gathers each
    # column-parallel linear's input into one global buffer, one micro-batch's
    # 2 · 4,096 · 4,096 values of 2 bytes; DTensor (ddp) gathers into new tensors instead
    shape = PRESETS["llama-2-7b"].replace(implementation="reference", context=4096)
    layout = TrainingSetup(dtype="bf16-master", attention="flash", batch=2, tp=4, sp=True)
    assert buffer_parts(shape, layout.replace(framework="megatron"))["B_g"] == 2 * 4096 * 4096 * 2
    assert buffer_parts(shape, layout.replace(framework="ddp"))["B_g"] == 0
    assert buffer_parts(shape, layout.replace(framework="megatron", sp=False))["B_g"] == 0


def test_the_solver_answers_a_reader_who_runs_fsdp2_with_a_layout_it_runs():
    # FSDP2 refuses ZeRO stage 0 over many replicas: the solver skips those layouts and
    # answers with one FSDP2 runs that fits (sharded, or one replica: a pipeline of two
    # stages here, on 2 GPUs where sharding alone needs 4), not with the refusal
    from calc.fit import peak_bytes
    from calc.layout.solver import search
    inputs = parse_inputs({"preset": "llama-3-8b", "implementation": "reference", "context": "4096", "batch": "8",
                           "dtype": "bf16-master", "checkpoint": "block", "attention": "flash", "gpu": "h100-80gb",
                           "framework": "fsdp2"})
    answer = search(inputs.shape, inputs.setup, inputs.budget, inputs.question).layouts[0]
    assert answer.setup.framework == "fsdp2" and (answer.setup.zero >= 2 or answer.setup.dp == 1)
    assert peak_bytes(inputs.shape, answer.setup) <= inputs.budget
