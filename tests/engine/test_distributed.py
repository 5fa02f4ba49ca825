"""Per-GPU moments against whole steps run rank by rank on CPU processes (gloo).

validation/distributed.json holds what `python -m validation.distributed` measured: for
each case, every rank's most live bytes in each phase of a steady-state step of the
reference model under PyTorch's DistributedDataParallel (two ranks; its buckets a second
copy of the gradients, or the gradients' own memory with gradient_as_bucket_view). calc's
moments for that rank (framework ddp, dp = ranks) must equal each to the byte; these tests
need no torch.
"""

import json
from pathlib import Path

import pytest

from calc import ModelShape, TrainingSetup
from calc.layout.split import stages
from calc.peak import batch_lines, moments_table, pass_bytes, tensor_peak_bytes

MEASURED = json.loads((Path(__file__).resolve().parents[2] / "validation" / "distributed.json").read_text())
SHAPES = {name: ModelShape(**cfg) for name, cfg in MEASURED["shapes"].items()}
PHASE_MOMENTS = {"forward": ("block-forward", "forward-end"), "head": ("head-backward",),
                 "last-block": ("last-block-backward",), "first-block": ("first-block-backward",),
                 "embedding": ("embedding-backward",), "optimizer": ("optimizer-step",)}


def step_id(step) -> str:
    return (f"{step['framework']}-{step['ranks']}x-{step['shape']}-B{step['batch']}-{step['dtype']}-{step['attention']}-"
            f"{step['checkpoint']}{'-bucket-view' if step['bucket_view'] else ''}")


@pytest.mark.parametrize("step", MEASURED["steps"], ids=step_id)
def test_every_rank_s_phases_equal_calc_s_moments_to_the_byte(step):
    setup = TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                          checkpoint=step["checkpoint"], device="cpu", optimizer_impl="fused", dp=step["ranks"],
                          framework=step["framework"], ddp_bucket_view=step["bucket_view"])
    moments = {r.key: r.count for r in moments_table(SHAPES[step["shape"]], setup).rows}
    ours = {phase: max(moments[key] for key in keys) for phase, keys in PHASE_MOMENTS.items()}
    assert len(step["phases"]) == step["ranks"]
    for rank in step["phases"]:
        assert rank == ours


def test_ddp_s_bucket_copy_is_the_gradients_held_all_step():
    # fp32, one sequence of the small shape: with the copy every phase holds 4 bytes a
    # parameter more than with the buckets as the gradients' memory, at the optimizer step
    # (where both hold the gradients) none
    def phases(view):
        return next(s for s in MEASURED["steps"] if (s["shape"], s["batch"], s["dtype"], s["attention"],
                                                      s["bucket_view"]) == ("small-cs336", 1, "fp32", "explicit",
                                                                            view))["phases"][0]
    P = 21_664  # tests/engine/test_step_peak.py writes it out
    copy, view = phases(False), phases(True)
    assert copy["forward"] - view["forward"] == 0  # the view's buckets hold the gradients' bytes from the start
    assert copy["optimizer"] - view["optimizer"] == 4 * P


FSDP2 = json.loads((Path(__file__).resolve().parents[2] / "validation" / "distributed-fsdp2.json").read_text())
PARAMETERS = {
    # small-cs336: per block 2 norms (2·32), Q, K, V, O (4·32·32), W1, W3, W2 (3·48·32) = 8,768;
    # the embedding and the head (2·64·32) and the final norm (32): 2 · 8,768 + 4,128
    "small-cs336": 2 * (2 * 32 + 4 * 32 * 32 + 3 * 48 * 32) + 2 * 64 * 32 + 32,
    # small-gpt2: per block 2 LayerNorms (2·2·32), Q, K, V, O with biases (4·(32·32 + 32)),
    # W1 and W2 with biases (32·128 + 128 + 128·32 + 32) = 12,704; the tied embedding
    # (64·32), 16 positions (16·32) and the final LayerNorm (2·32): 2 · 12,704 + 2,624
    "small-gpt2": 2 * (2 * 2 * 32 + 4 * (32 * 32 + 32) + 32 * 128 + 128 + 128 * 32 + 32) + 64 * 32 + 16 * 32 + 2 * 32,
}


def fsdp2_id(step) -> str:
    return (f"{step['shape']}-B{step['batch']}-{step['dtype']}-{step['attention']}-{step['checkpoint']}"
            f"{'-reshard' if step['reshard'] else ''}-m{step.get('microbatches', 1)}")


@pytest.mark.parametrize("step", FSDP2["steps"], ids=fsdp2_id)
def test_fsdp2_s_optimizer_step_holds_a_shard_of_every_state(step):
    # DDP holds, at the optimizer step, fp32 parameters (4 bytes), gradients (4) and Adam's
    # two moments (8) for all P parameters; FSDP2 on N ranks holds each of them for P/N
    # (its shards; under the bf16 policy too: fp32 shards, fp32 reduce dtype). The rest
    # (buffers, step counts, token ids) is the same, but the loss: bf16 under the policy,
    # 2 bytes fewer than DDP's fp32 one.
    P, N = PARAMETERS[step["shape"]], step["ranks"]
    ddp = next(s for s in MEASURED["steps"] if s["dtype"] == "fp32" and s["bucket_view"] and (
        s["shape"], s["batch"], s["attention"], s["checkpoint"]) == (step["shape"], step["batch"], step["attention"],
                                                                     step["checkpoint"]))
    loss_saving = 2 if step["dtype"] == "bf16-master" else 0
    for rank in step["phases"]:
        assert ddp["phases"][0]["optimizer"] - rank["optimizer"] == 16 * P - 16 * P // N + loss_saving


FSDP2_PHASE_MOMENTS = {
    "forward": ("block-forward", "forward-end", "fsdp2-gather-first", "fsdp2-gather-last"),
    "head": ("head-backward", "fsdp2-regather-root", "fsdp2-gather-backward"),
    "last-block": ("last-block-backward", "fsdp2-reduce-last", "fsdp2-reduce-scatter-last", "fsdp2-gather-next"),
    "first-block": ("first-block-backward",),
    "embedding": ("embedding-backward", "fsdp2-reduce-first", "fsdp2-reduce-scatter-first", "fsdp2-reduce-root", "fsdp2-reduce-scatter-root"),
    "optimizer": ("optimizer-step",),
}


def fsdp2_moments(step) -> dict[str, int]:
    setup = TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                          checkpoint=step["checkpoint"], device="cpu", optimizer_impl="fused", dp=step["ranks"],
                          framework="fsdp2", zero=3 if step["reshard"] else 2,
                          microbatches=step.get("microbatches", 1))
    moments = {r.key: r.count for r in moments_table(SHAPES[step["shape"]], setup).rows}
    return {phase: max(moments[key] for key in keys) for phase, keys in FSDP2_PHASE_MOMENTS.items()}


@pytest.mark.parametrize("step", FSDP2["steps"], ids=fsdp2_id)
def test_every_fsdp2_rank_s_phases_equal_calc_s_moments_to_the_byte(step):
    ours = fsdp2_moments(step)
    assert len(step["phases"]) == step["ranks"]
    for rank in step["phases"]:
        assert rank == ours


def test_fsdp2_s_later_micro_batch_holds_every_gradient_shard_from_its_start():
    # Accumulating, FSDP2 reduce-scatters each micro-batch's gradients and adds them into
    # the fp32 shards, which the second micro-batch holds all through its forward pass:
    # 4 bytes for each of a rank's P/N parameters (small-cs336, fp32: 4 · 21,664 / 2).
    # From the first block's backward on, the first micro-batch has made some shards
    # already: there the second holds one block's fewer more (4 · 8,768 / 2).
    def phases(microbatches):
        return next(s for s in FSDP2["steps"] if (s["shape"], s["batch"], s["dtype"], s["attention"], s["reshard"],
                                                   s.get("microbatches", 1))
                    == ("small-cs336", 1, "fp32", "explicit", True, microbatches))["phases"][0]

    one, two = phases(1), phases(2)
    shards = 4 * PARAMETERS["small-cs336"] // 2
    assert two["forward"] - one["forward"] == shards == 43_328
    assert two["first-block"] - one["first-block"] == shards - 4 * 8_768 // 2
    assert two["optimizer"] == one["optimizer"]


TP = json.loads((Path(__file__).resolve().parents[2] / "validation" / "distributed-tp.json").read_text())


def tp_id(step) -> str:
    return (f"{step['shape']}-B{step['batch']}-{step['dtype']}-{step['attention']}-{step['checkpoint']}"
            f"{'-sp' if step['sp'] else ''}")


def tp_setup(step, framework="ddp") -> TrainingSetup:
    return TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                         checkpoint=step["checkpoint"], device="cpu", optimizer_impl="fused", tp=step["tp"],
                         sp=step["sp"], framework=framework)


@pytest.mark.parametrize("step", TP["steps"], ids=tp_id)
def test_every_tensor_parallel_rank_saves_what_calc_counts_to_the_byte(step):
    # what autograd saved on each rank in the measured step's forward pass (parameters,
    # buffers and autocast's weight copies apart) against the stage's activation bytes
    first, last = stages(SHAPES[step["shape"]], tp_setup(step))
    assert first == last  # one pipeline stage
    assert [rank["saved"] for rank in step["phases"]] == [first.activations] * step["ranks"]


@pytest.mark.parametrize("step", TP["steps"], ids=tp_id)
def test_every_tensor_parallel_rank_s_phases_equal_calc_s_moments_to_the_byte(step):
    moments = {r.key: r.count for r in moments_table(SHAPES[step["shape"]], tp_setup(step)).rows}
    phases = PHASE_MOMENTS | {"forward": (*PHASE_MOMENTS["forward"], "log-softmax-inside")}
    ours = {phase: max(moments[key] for key in keys) for phase, keys in phases.items()}
    for rank in step["phases"]:
        assert {phase: rank[phase] for phase in ours} == ours


def test_dtensor_keeps_the_gathered_inputs_megatron_keeps_a_shard_of():
    # small-cs336, one sequence, fp32, two ranks with sequence parallelism: per block the
    # Q/K/V input and the feed-forward input, and the head's input, each s·d = 16·32 values
    # of 4 bytes; DTensor keeps them whole, Megatron-LM keeps half: 2·2·1,024 + 1,024 more
    step = next(s for s in TP["steps"] if (s["shape"], s["batch"], s["dtype"], s["attention"], s["sp"])
                == ("small-cs336", 1, "fp32", "explicit", True))
    megatron = stages(SHAPES["small-cs336"], tp_setup(step, framework="megatron"))[0].activations
    assert step["phases"][0]["saved"] - megatron == 2 * 2 * (16 * 32 * 4 // 2) + 16 * 32 * 4 // 2


def test_dtensor_s_embedding_gradient_is_whole_on_each_rank():
    # Between the end of the embedding's backward and the optimizer step nothing is freed
    # but what the step swaps: the measured optimizer phase holds the embedding's gradient
    # whole, 64·32 fp32 values = 8,192 bytes, where the rank's shard of the weight is 4,096.
    # calc with the gradient split by vocabulary (Megatron-LM's rule) is 4,096 bytes lower.
    step = next(s for s in TP["steps"] if (s["shape"], s["batch"], s["dtype"], s["attention"], s["sp"])
                == ("small-cs336", 1, "fp32", "explicit", False))
    split = {r.key: r.count for r in moments_table(SHAPES["small-cs336"], tp_setup(step, "megatron")).rows}
    assert step["phases"][0]["optimizer"] - split["optimizer-step"] == 64 * 32 * 4 - 64 * 32 * 4 // 2


def test_dtensor_s_log_softmax_holds_the_shifted_logits_beside_the_logits_and_the_result():
    # small-cs336, three sequences, fp32, sequence parallel: the forward pass peaks inside
    # loss_parallel's log-softmax, where the shifted logits (48 tokens × 32 of the rank's
    # 64-word vocabulary, fp32: 6,144 bytes) and three values a token (the maximum, the sum
    # of exponentials, its logarithm: 3 · 48 · 4 = 576) are alive beside what the end of
    # the forward pass holds, less the new loss and NLL's total weight (4 bytes each), not
    # yet made
    step = next(s for s in TP["steps"] if (s["shape"], s["batch"], s["dtype"], s["attention"], s["sp"])
                == ("small-cs336", 3, "fp32", "explicit", True))
    moments = {r.key: r.count for r in moments_table(SHAPES["small-cs336"], tp_setup(step)).rows}
    assert step["phases"][0]["forward"] - moments["forward-end"] == 48 * 32 * 4 + 3 * 48 * 4 - 4 - 4


PP = json.loads((Path(__file__).resolve().parents[2] / "validation" / "distributed-pp.json").read_text())


def pp_id(step) -> str:
    return (f"{step['shape']}-B{step['batch']}-m{step['microbatches']}-{step['schedule']}-{step['dtype']}-"
            f"{step['attention']}-{step['checkpoint']}")


def pp_setup(step) -> TrainingSetup:
    return TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                         checkpoint=step["checkpoint"], device="cpu", optimizer_impl="fused", pp=step["pp"],
                         microbatches=step["microbatches"], schedule=step["schedule"], framework=step["framework"])


@pytest.mark.parametrize("step", PP["steps"], ids=pp_id)
def test_every_pipeline_rank_s_passes_equal_calc_s_to_the_byte(step):
    # each rank runs one stage: each micro-batch's forward and backward, then the optimizer
    for rank, measured in enumerate(step["phases"]):
        assert pass_bytes(SHAPES[step["shape"]], pp_setup(step), rank) == measured


@pytest.mark.parametrize("step", PP["steps"], ids=pp_id)
def test_the_pipeline_s_peak_is_its_fullest_rank_s(step):
    shape, setup = SHAPES[step["shape"]], pp_setup(step)
    assert tensor_peak_bytes(shape, setup) == max(max(rank.values()) for rank in step["phases"])
    assert max(line.at(step["batch"]) for line in batch_lines(shape, setup)) == tensor_peak_bytes(shape, setup) or \
        step["batch"] == 1  # the lines hold from two sequences on


def test_the_last_stage_keeps_every_micro_batch_s_input_buffer_all_run():
    # small-cs336, one sequence a micro-batch, two micro-batches, fp32: at the optimizer step
    # the last stage holds its 10,848 parameters with gradients and Adam's moments (16 bytes
    # each), RoPE's tables (2 · 16 · 4 values of 4 bytes), a step count for each of its 11
    # parameter tensors (a block's 9, the final norm, the head: 4 bytes each), both micro-
    # batches' targets (2 · 16 int64) and a receive buffer for each micro-batch's input
    # activations (2 · 16 tokens · 32 values, fp32)
    step = next(s for s in PP["steps"] if (s["shape"], s["batch"], s["microbatches"], s["attention"])
                == ("small-cs336", 1, 2, "explicit"))
    assert step["phases"][1]["optimizer"] == (16 * 10_848 + 2 * 16 * 4 * 4 + 11 * 4 + 2 * 16 * 8
                                              + 2 * 16 * 32 * 4)


def test_gpipe_s_first_stage_holds_every_micro_batch_at_the_first_backward():
    # small-cs336, one sequence a micro-batch, four micro-batches, fp32: the first stage's
    # first backward finds all four forwarded under GPipe, two under 1F1B; each forward adds
    # what one micro-batch keeps (its saved activations and its output, measured as the
    # rise from the first forward to the second)
    def first_stage(schedule):
        return next(s for s in PP["steps"] if (s["shape"], s["batch"], s["microbatches"], s["attention"],
                                               s["schedule"]) == ("small-cs336", 1, 4, "explicit", schedule))["phases"][0]
    gpipe, one_f_one_b = first_stage("gpipe"), first_stage("1f1b")
    one_micro_batch = gpipe["forward-1"] - gpipe["forward-0"]
    assert gpipe["backward-0"] - one_f_one_b["backward-0"] == 2 * one_micro_batch


FSDP2_PP = json.loads((Path(__file__).resolve().parents[2] / "validation" / "distributed-fsdp2-pp.json").read_text())


def fsdp2_pp_id(step) -> str:
    return (f"{step['shape']}-B{step['batch']}-m{step['microbatches']}-{step['schedule']}-{step['dtype']}-"
            f"{step['attention']}-{step['checkpoint']}-{'reshard' if step['reshard'] else 'keep'}")


def fsdp2_pp_setup(step) -> TrainingSetup:
    return pp_setup(step).replace(dp=step["ranks"] // step["pp"], zero=3 if step["reshard"] else 2)


@pytest.mark.parametrize("step", FSDP2_PP["steps"], ids=fsdp2_pp_id)
def test_every_rank_of_fsdp2_inside_a_pipeline_equals_calc_s_passes_to_the_byte(step):
    # ranks 0 and 1 run the first stage, each a shard of it; ranks 2 and 3 the last: each
    # micro-batch's forward and backward, the reduce-scatter once all are done, the optimizer
    replicas = step["ranks"] // step["pp"]
    for rank, measured in enumerate(step["phases"]):
        assert pass_bytes(SHAPES[step["shape"]], fsdp2_pp_setup(step), rank // replicas) == measured


@pytest.mark.parametrize("step", FSDP2_PP["steps"], ids=fsdp2_pp_id)
def test_fsdp2_inside_a_pipeline_peaks_at_its_fullest_rank(step):
    shape, setup = SHAPES[step["shape"]], fsdp2_pp_setup(step)
    assert tensor_peak_bytes(shape, setup) == max(max(rank.values()) for rank in step["phases"])


def test_fsdp2_keeps_a_pipeline_stage_gathered_where_the_plain_pipeline_holds_whole_states():
    # small-cs336, one sequence a micro-batch, four micro-batches under 1F1B, fp32, no
    # resharding after forward (zero 2): once the step's first forward has gathered them, a
    # stage's parameters stay gathered until every micro-batch is done, and its gradients
    # unsharded, as in the pipeline without FSDP2. Each pass after the first then holds what
    # the plain pipeline's does, but its parameters' 4 bytes and Adam's 8 a value are shards
    # over the 2 replicas beside the gathered fp32 parameters: 4/2 + 8/2 + 4 = 10 bytes a
    # value where the plain stage holds 12 (the first stage: the embedding, 64 · 32 values,
    # and one block, 8,768)
    def phases(steps, **fields):
        return next(s for s in steps if all(s.get(k) == v for k, v in fields.items()))["phases"]
    case = dict(shape="small-cs336", batch=1, microbatches=4, schedule="1f1b", dtype="fp32", attention="explicit")
    plain, sharded = phases(PP["steps"], **case)[0], phases(FSDP2_PP["steps"], reshard=False, **case)[0]
    stage_values = 64 * 32 + 8_768
    for phase in ("forward-1", "backward-0", "forward-2", "backward-1", "backward-3"):
        assert sharded[phase] - plain[phase] == (10 - 12) * stage_values
