"""Parallel training against the papers that introduced it; every expected number is the
paper's own, or the paper's formula written out here."""

from fractions import Fraction

import pytest

from calc import PRESETS, ModelShape, TrainingSetup, activation_table, parameter_count, peak_bytes
from calc.errors import FieldError
from calc.inputs import InputError, inputs_to_params, parse_inputs
from calc.layout.per_gpu import per_gpu_bytes, per_gpu_table
from calc.layout.solver import Question, solve
from calc.layout.split import stages, zero_states
from calc.peak import moments_table

# Rajbhandari et al. 2020, figure 1: a 7.5B-parameter model on 64 GPUs, mixed-precision
# Adam (K = 12): 120 GB baseline, 31.4 GB (P_os), 16.6 GB (P_os+g), 1.9 GB (P_os+g+p).
PSI, N, MIXED_ADAM = 7_500_000_000, 64, (2, 2, 12)


@pytest.mark.parametrize("stage, printed_gb", [(0, 120), (1, 31.4), (2, 16.6), (3, 1.9)])
def test_zero_paper_figure_1(stage, printed_gb):
    assert round(sum(zero_states(PSI, N, stage, MIXED_ADAM)) / 1e9, 1) == printed_gb


def test_zero_stage_formulas_exactly():
    assert sum(zero_states(PSI, N, 0, MIXED_ADAM)) == 16 * PSI
    assert sum(zero_states(PSI, N, 1, MIXED_ADAM)) == 4 * PSI + 12 * PSI // N
    assert sum(zero_states(PSI, N, 2, MIXED_ADAM)) == 2 * PSI + 14 * PSI // N
    assert sum(zero_states(PSI, N, 3, MIXED_ADAM)) == 16 * PSI // N


# Korthikanti et al. 2022, section 4: per layer, s·b·h·(34 + 5·a·s/h) bytes; with tensor
# parallelism s·b·h·(10 + 24/t + 5·a·s/(h·t)); with sequence parallelism s·b·h/t·(34 + 5·a·s/h);
# selective recomputation drops 5·a·s/h; full recomputation keeps 2·s·b·h.
GPT3_175B = ModelShape(vocab=51200, context=2048, layers=96, d_model=12288, heads=96, kv_heads=96, d_ff=4 * 12288,
                       ffn="gelu", norm="layernorm", bias=True, positions="learned", tied=True)


def per_layer(shape, **setup):
    table = activation_table(shape, TrainingSetup(accounting="megatron", dtype="bf16", **setup))
    return table.bytes_for_batch() // shape.layers


@pytest.mark.parametrize("b", [1, 4])
def test_megatron_per_layer_without_parallelism(b):
    s, h, a = 2048, 12288, 96
    assert per_layer(GPT3_175B, batch=b) == s * b * h * 34 + 5 * a * s * s * b


@pytest.mark.parametrize("t", [2, 4, 8])
def test_megatron_tensor_parallel(t):
    s, h, a, b = 2048, 12288, 96, 1
    assert per_layer(GPT3_175B, tp=t) == s * b * h * 10 + s * b * h * 24 // t + 5 * a * s * s * b // t


@pytest.mark.parametrize("t", [2, 8])
def test_megatron_sequence_parallel_and_selective_recomputation(t):
    s, h, a, b = 2048, 12288, 96, 1
    assert per_layer(GPT3_175B, tp=t, sp=True) == (s * b * h * 34 + 5 * a * s * s * b) // t
    assert per_layer(GPT3_175B, tp=t, sp=True, checkpoint="selective") == s * b * h * 34 // t
    assert per_layer(GPT3_175B, checkpoint="block") == 2 * s * b * h


def test_gpt2_xl_seed_shape_per_layer():
    # the same formula for GPT-2 XL: h = 1,600, a = 25, s = 1,024
    assert per_layer(PRESETS["gpt2-xl"]) == 1024 * 1600 * 34 + 5 * 25 * 1024 * 1024


def test_pipeline_first_stage_holds_p_micro_batches():
    shape = PRESETS["llama-2-7b"]
    one = TrainingSetup(accounting="megatron", dtype="bf16", attention="flash")
    first, last = stages(shape, one.replace(pp=4, microbatches=8))
    blocks = activation_table(shape, one).bytes_for_batch()
    assert first.activations == 4 * blocks // 4  # p micro-batches of L/p layers: the whole model's worth
    assert last.activations == blocks // 4


def test_tensor_and_pipeline_split_the_weights():
    shape = PRESETS["llama-2-7b"]
    d, ff, V, L = 4096, 11008, 32000, 32
    setup = TrainingSetup(tp=4, pp=2, microbatches=2, dtype="bf16")
    first, last = stages(shape, setup)
    block = (4 * d * d + 3 * d * ff) // 4 + 2 * d  # matrices split 4 ways, two RMSNorm gains whole
    assert first.parameters == V * d // 4 + (L // 2) * block
    assert last.parameters == (L // 2) * block + d + V * d // 4


def test_per_gpu_table_ends_with_the_peak_of_the_fullest_gpu():
    setup = TrainingSetup(dtype="bf16", dp=8, zero=2, tp=4, pp=2, microbatches=4)
    rows = {r.key: r.bytes for r in per_gpu_table(PRESETS["llama-2-7b"], setup).rows}
    assert rows["peak"] == per_gpu_bytes(PRESETS["llama-2-7b"], setup)
    # at the end of the forward pass the states, the copies and everything in flight are
    # alive at once (the gradients are not made yet): the peak is at least their sum
    assert rows["peak"] >= rows["parameters"] + rows["optimizer"] + rows["weight-copies"] + rows["activations"]


@pytest.mark.parametrize("preset", ["cs336-gpt2-xl", "llama-3-8b"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "bf16-master"])
def test_one_gpu_is_the_home_pages_step_whatever_the_zero_stage(preset, dtype):
    # one memory model: a layout of one GPU walks the same moments as the one-GPU peak,
    # and ZeRO shards nothing over a single replica
    shape = PRESETS[preset].replace(implementation="reference", context=1024)
    setup = TrainingSetup(dtype=dtype, attention="flash")
    for zero in (0, 1, 2, 3):
        assert per_gpu_bytes(shape, setup.replace(zero=zero)) == peak_bytes(shape, setup)
    rows = {r.key: r.bytes for r in per_gpu_table(shape, setup.replace(zero=3)).rows}
    weights, gradients, optimizer = {"fp32": (4, 4, 8), "bf16": (4, 4, 8), "bf16-master": (2, 2, 12)}[dtype]
    P = parameter_count(shape)
    assert (rows["parameters"], rows["gradients"], rows["optimizer"]) == (weights * P, gradients * P, optimizer * P)


def every_layout(shape, sequences):
    """Every layout of `sequences` a step within the solver's bounds, by brute force."""
    for tp in (1, 2, 4, 8):
        for sp in (False, True) if tp > 1 else (False,):
            for pp in (p for p in range(1, shape.layers + 1) if shape.layers % p == 0 and p <= 128):
                for dp in (d for d in range(1, sequences + 1) if sequences % d == 0):
                    for m in (m for m in range(1, sequences // dp + 1) if (sequences // dp) % m == 0):
                        for zero in (0, 1, 2, 3) if pp == 1 else (0, 1):
                            yield TrainingSetup(dtype="bf16", attention="flash", tp=tp, sp=sp, pp=pp, dp=dp, zero=zero,
                                                microbatches=m, batch=sequences // dp // m)


def fits(shape, setup, budget) -> bool:
    """Whether the layout fits; one its framework does not run (PyTorch's 1F1B with fewer
    micro-batches than stages) does not."""
    try:
        return per_gpu_bytes(shape, setup) <= budget
    except FieldError:
        return False


def test_the_solver_finds_the_fewest_gpus_then_the_fewest_micro_batches():
    shape, budget = PRESETS["llama-2-7b"], 80 * 10**9
    best = solve(shape, TrainingSetup(dtype="bf16", attention="flash", batch=8), budget)[0]
    assert best.peak == per_gpu_bytes(shape, best.setup) <= budget
    assert best.setup.global_batch == 8
    # one GPU cannot: 16 bytes of state per parameter alone exceed 80 GB
    assert 16 * 6_738_415_616 > 80 * 10**9 and best.gpus > 1
    # by brute force: no layout with fewer GPUs fits, nor one as small with fewer micro-batches
    fitting = [s for s in every_layout(shape, 8) if fits(shape, s, budget)]
    fewest = min(s.dp * s.tp * s.pp for s in fitting)
    assert best.gpus == fewest
    assert best.setup.microbatches == min(s.microbatches for s in fitting if s.dp * s.tp * s.pp == fewest)


def test_a_fixed_stage_and_a_micro_batch_limit_are_kept():
    shape, budget = PRESETS["llama-2-7b"], 80 * 10**9
    for stage in ("1", "3"):
        for layout in solve(shape, TrainingSetup(dtype="bf16", attention="flash", batch=8), budget,
                            Question(stage=stage, max_microbatches=2, allow_pp=False)):
            assert layout.setup.dp == 1 or layout.setup.zero == int(stage)
            assert layout.setup.microbatches <= 2 and layout.setup.pp == 1


@pytest.mark.parametrize("params, field", [({"tp": "3"}, "tp"), ({"pp": "5"}, "pp"), ({"sp": "true"}, "sp"),
                                           ({"zero": "4"}, "zero"), ({"dp": "0"}, "dp")])
def test_impossible_layouts_name_the_field(params, field):
    with pytest.raises(InputError) as error:
        parse_inputs(params)
    assert field in error.value.errors


def test_tensor_parallelism_without_sp_keeps_the_linear_inputs_whole():
    # The reference model in fp32, one sequence, one GPU's share at t = 4 (Korthikanti et al.
    # 2022, section 4.2: the inputs of the column-parallel linears, the norms and the block
    # input stay whole on every rank; what belongs to the rank's heads and feed-forward
    # width is split). Per layer, in fp32 values:
    #   whole: two norms (2·s·d + s each), the Q/K/V input s·d, the feed-forward input s·d
    #   split: Q, K, V, the attention output (4·s·d), P (h·s²), W1 x, SiLU, W3 x, the product
    #          (4·s·d_ff)
    # and once per step the s² bool causal mask, whole.
    shape = PRESETS["llama-3-8b"].replace(implementation="reference", context=4096)
    s, d, h, ff, L, t = 4096, 4096, 32, 14336, 32, 4
    setup = TrainingSetup(tp=t)
    (first, _), = [stages(shape, setup)]
    whole = 2 * (2 * s * d + s) + s * d + s * d
    split = (4 * s * d + h * s * s + 4 * s * ff) // t
    blocks = 4 * L * (whole + split)
    head = 4 * (2 * s * d + s + s * d) + 4 * s * 128256 // t + 8 * s + 4  # final norm, head input, log-probs / t, targets, NLL weight
    assert first.activations == 8 * s + blocks + s * s + head  # + token ids, the mask


def test_sequence_parallelism_splits_the_rest_but_not_the_mask():
    # with sequence parallelism the whole tensors above are split too (norms, block
    # inputs, the linears' inputs, the final norm, the head's input), as Megatron-LM runs
    # it; the causal mask, one s² tensor a step, and the targets stay whole
    shape = PRESETS["llama-3-8b"].replace(implementation="reference", context=4096)
    s, d, h, ff, L, t, V = 4096, 4096, 32, 14336, 32, 4, 128256
    first = stages(shape, TrainingSetup(tp=t, sp=True, framework="megatron"))[0]
    blocks = 4 * L * (2 * (2 * s * d + s) + 2 * s * d + 4 * s * d + h * s * s + 4 * s * ff) // t
    head = 4 * (2 * s * d + s + s * d) // t + 4 * s * V // t + 8 * s + 4
    assert first.activations == 8 * s + blocks + s * s + head


def test_dtensor_keeps_the_column_parallel_linears_gathered_inputs_whole():
    # PyTorch's DTensor (framework ddp) saves what its all-gather made: per block the Q/K/V
    # and feed-forward inputs (s·d each) and the head's input stay whole on every GPU
    shape = PRESETS["llama-3-8b"].replace(implementation="reference", context=4096)
    s, d, h, ff, L, t, V = 4096, 4096, 32, 14336, 32, 4, 128256
    first = stages(shape, TrainingSetup(tp=t, sp=True, framework="ddp"))[0]
    blocks = 4 * L * (2 * (2 * s * d + s) + 4 * s * d + h * s * s + 4 * s * ff) // t + 4 * L * 2 * s * d
    head = 4 * (2 * s * d + s) // t + 4 * s * d + 4 * s * V // t + 8 * s + 4
    assert first.activations == 8 * s + blocks + s * s + head


def test_zero_2_and_3_with_pipelines_are_refused_as_deepspeed_refuses_them():
    for zero in (2, 3):
        with pytest.raises(InputError) as error:
            parse_inputs({"dp": "2", "zero": str(zero), "pp": "2"})
        assert list(error.value.errors) == ["zero"] and "DeepSpeed" in error.value.errors["zero"]
    assert parse_inputs({"dp": "2", "zero": "1", "pp": "2"}).setup.zero == 1


def test_the_solver_never_combines_zero_2_or_3_with_pipelines():
    # 1 GB a GPU for Llama 2 7B needs pipeline stages and data parallelism together: the
    # replicas may shard the optimizer state (stage 1), not the gradients or parameters
    # (NCCL's memory left out: 512 MiB a communicator would not leave room for any layout)
    layouts = solve(PRESETS["llama-2-7b"], TrainingSetup(dtype="bf16", attention="flash", batch=8, nccl=0), 10**9)
    assert layouts and all(layout.setup.zero <= 1 for layout in layouts if layout.setup.pp > 1)


def test_megatron_lm_theoretical_memory_usage_with_the_interleaved_schedule():
    # Megatron-LM's megatron/training/theoretical_memory_usage.py, compute_activation_memory
    # (sequence parallelism and selective recomputation), for GPT-3 175B on tp 8 × pp 8 with
    # 3 virtual stages: per layer s·b·h·(18 + 4·ffn/h) bytes, times L; plus the embedding's
    # input (8·s·b·p) and dropout (s·b·h·p); times the interleaved schedule's penalty
    # 1 + (p − 1)/(p·v); divided by t.
    s, b, h, ffn, L, p, t, v = 2048, 1, 12288, 4 * 12288, 96, 8, 8, 3
    per_layer = s * b * h * (18 + 4 * ffn // h)
    embedding = 8 * s * b * p + s * b * h * p
    penalty = Fraction(1) + Fraction(p - 1, p * v)
    megatron = (L * per_layer + embedding) * penalty / t
    assert penalty == Fraction(31, 24)
    setup = TrainingSetup(accounting="megatron", dtype="bf16", checkpoint="selective", tp=t, sp=True, pp=p,
                          virtual_stages=v, microbatches=8)
    first, _ = stages(GPT3_175B, setup)
    # calc's megatron accounting counts the layers (Korthikanti's per-layer form), not the embedding
    assert first.activations == L * per_layer * penalty / t
    assert first.activations + embedding * penalty / t == megatron
    # without interleaving the first stage holds p micro-batches of L/p layers: the model's worth
    plain = stages(GPT3_175B, setup.replace(virtual_stages=1))[0].activations
    assert plain == L * per_layer / t


def test_virtual_stages_need_pipelines_and_micro_batches_pp_divides():
    for params in ({"virtual_stages": "2"}, {"pp": "4", "virtual_stages": "2", "microbatches": "6"},
                   {"pp": "4", "virtual_stages": "5", "microbatches": "8"}):
        with pytest.raises(InputError) as error:
            parse_inputs(params)
        assert list(error.value.errors) == ["virtual_stages"]


def test_context_parallelism_splits_every_sequence_and_zero_shards_over_its_ranks():
    # ring attention: each of cp GPUs keeps its 1/cp of every sequence's tokens; the model
    # states are replicated over the cp ranks, so ZeRO shards them over dp × cp
    shape = PRESETS["llama-3-8b"].replace(context=4096)
    setup = TrainingSetup(dtype="bf16", attention="flash", checkpoint="block")
    whole = {r.key: r.bytes for r in per_gpu_table(shape, setup).rows}
    split = {r.key: r.bytes for r in per_gpu_table(shape, setup.replace(cp=4, zero=3)).rows}
    P = parameter_count(shape)
    assert (split["parameters"], split["gradients"], split["optimizer"]) == (4 * P // 4, 4 * P // 4, 8 * P // 4)
    # everything kept per sequence counts tokens: a quarter of each (the RoPE tables once a step)
    rows = activation_table(shape, setup).rows
    per_step = sum(r.bytes for r in rows if r.per_step)
    quarter = sum(-(-r.count // 4) * r.bytes_per_value for r in rows if not r.per_step)
    assert split["activations"] == quarter + per_step
    assert whole["activations"] == sum(r.bytes for r in rows)


@pytest.mark.parametrize("params, field", [({"cp": "2", "attention": "explicit", "context": "1024"}, "cp"),
                                           ({"cp": "3", "attention": "flash", "context": "1030"}, "cp")])
def test_context_parallelism_needs_flash_attention_and_two_chunks_a_gpu(params, field):
    with pytest.raises(InputError) as error:
        parse_inputs(params)
    assert list(error.value.errors) == [field]


def test_communication_buffers_with_the_frameworks_defaults():
    shape = PRESETS["llama-2-7b"]
    P = parameter_count(shape)
    setup = TrainingSetup(dtype="bf16-master", attention="flash", checkpoint="block", dp=8)
    shape = shape.replace(implementation="reference")

    def rows(**changes):
        return {r.key: r.bytes for r in per_gpu_table(shape, setup.replace(**changes)).rows}

    # PyTorch DDP: its buckets are a second copy of the (bf16) gradients, unless the
    # gradients are views of them (gradient_as_bucket_view=True)
    assert rows(zero=0)["buffer-b-d"] == 2 * P
    assert "buffer-b-d" not in rows(zero=0, ddp_bucket_view=True)
    # DeepSpeed ZeRO-1/2: a reduce bucket of 5e8 values; the updated parameters are gathered
    # into the flat bf16 parameters themselves (all_gather_into_tensor): no all-gather bucket
    assert rows(zero=2)["buffer-b-r"] == 2 * 500_000_000 and "buffer-b-g" not in rows(zero=2)
    # ZeRO-3: the layer at work, gathered whole, and a prefetch bucket of 5e7 values
    block = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
    assert rows(zero=3)["buffer-b-p"] == 2 * (block + 50_000_000)
    assert rows(zero=3, prefetch_bucket=1)["buffer-b-p"] == 2 * (block + 1)


def test_a_fixed_stage_shards_over_two_gpus_at_least_and_sequences_are_the_questions():
    # Llama 3 8B, 8 sequences of 4,096 tokens, bf16 autocast (16 bytes of state a parameter,
    # 128 GB in all): no single H100 holds it, and a ZeRO stage the reader fixes is used
    shape = PRESETS["llama-3-8b"].replace(context=4096)
    setup = TrainingSetup(dtype="bf16", attention="flash", checkpoint="block", dp=64)  # the page's 64 replicas
    budget = 81_559 * 2**20 - 2**30
    for layout in solve(shape, setup, budget, Question(stage="3", sequences=8)):
        assert layout.setup.dp * layout.setup.cp >= 2 and layout.setup.zero == 3
        assert layout.setup.dp * layout.setup.microbatches * layout.setup.batch == 8


def test_nccl_s_memory_is_held_all_step_once_a_communicator():
    # Llama-2-7B on CUDA, tp 2, pp 2, dp 2 with ZeRO-1: three communicators (replicas,
    # tensor-parallel group, pipeline neighbours), 512 MiB each by default: every moment of
    # the step holds 3 · 536,870,912 bytes more than with nccl 0; on the CPU (gloo) none
    layout = TrainingSetup(dtype="bf16", attention="flash", batch=2, dp=2, zero=1, tp=2, pp=2, microbatches=2)
    def moments(setup):
        return [r.count for r in moments_table(PRESETS["llama-2-7b"], setup).rows]
    with_nccl, without = moments(layout), moments(layout.replace(nccl=0))
    assert [a - b for a, b in zip(with_nccl, without)] == [3 * 512 * 2**20] * len(without)
    on_cpu = layout.replace(device="cpu")
    assert moments(on_cpu) == moments(on_cpu.replace(nccl=0))
    assert moments(layout.replace(dp=1, zero=0, tp=1, pp=1, microbatches=1)) == moments(
        layout.replace(dp=1, zero=0, tp=1, pp=1, microbatches=1, nccl=0))  # one GPU: no communicator


def test_nccl_s_memory_is_a_field_of_links_and_the_cli():
    inputs = parse_inputs({"nccl": "1 GiB", "dp": "2"})
    assert inputs.setup.nccl == 2**30
    assert inputs_to_params(inputs)["nccl"] == "1 GiB"
    assert parse_inputs({"nccl": "0"}).setup.nccl == 0
    with pytest.raises(InputError) as error:
        parse_inputs({"nccl": "lots"})
    assert list(error.value.errors) == ["nccl"]
