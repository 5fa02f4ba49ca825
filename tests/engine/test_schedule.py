"""The passes of PyTorch's pipeline schedules (calc.layout.schedule): the few passes calc
walks for a stage's peak against every pass of the schedule, simulated."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc.layout.schedule import every_pass, fullest, passes


def test_one_f_one_b_s_first_stage_holds_as_many_micro_batches_as_stages():
    # 1F1B on stage 0 of 4, 8 micro-batches: four forwards before the first backward,
    # which finds the three others in flight; at the end the last backward finds none
    run = every_pass(0, 4, 8, "1f1b")
    assert [p.kind for p in run[:5]] == ["forward"] * 4 + ["backward"]
    assert run[4].others == 3 and run[-1].others == 0 and run[-1].kind == "backward"
    assert max(p.others for p in run) == 3


def test_gpipe_s_first_backward_finds_every_micro_batch_forwarded():
    run = every_pass(0, 2, 6, "gpipe")
    first_backward = next(p for p in run if p.kind == "backward")
    assert first_backward.others == 5 and not first_backward.accumulated


def test_the_last_stage_keeps_every_earlier_loss_until_the_step_ends():
    # 1F1B's last stage alternates: forward j finds the losses of forwards 0..j-1
    run = every_pass(1, 2, 4, "1f1b")
    assert [(p.kind, p.microbatch, p.losses) for p in run] == [
        ("forward", 0, 0), ("backward", 0, 0), ("forward", 1, 1), ("backward", 1, 1),
        ("forward", 2, 2), ("backward", 2, 2), ("forward", 3, 3), ("backward", 3, 3)]


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 8), st.integers(1, 24), st.data(), st.sampled_from(["1f1b", "gpipe"]),
       st.lists(st.integers(1, 10**6), min_size=6, max_size=6))
def test_the_passes_walked_are_passes_of_the_schedule_and_reach_its_fullest(stages, m, data, schedule, weights):
    # whatever positive weight each thing a pass finds alive has, the fullest forward and
    # the fullest backward among the few passes calc walks are the fullest of all
    if schedule == "1f1b" and m < stages:
        m = stages
    stage = data.draw(st.integers(0, stages - 1))
    walked, every = passes(stage, stages, m, schedule), every_pass(stage, stages, m, schedule)
    assert set(walked) <= set(every)

    def alive(p):
        return sum(w * x for w, x in zip(weights, (p.others, p.sent, p.losses, p.accumulated, p.previous_output,
                                                   p.microbatch > 0)))
    for kind in ("forward", "backward"):
        assert max(alive(p) for p in walked if p.kind == kind) == max(alive(p) for p in every if p.kind == kind)
        for flags in {(p.accumulated, p.previous_output, p.microbatch > 0) for p in every if p.kind == kind}:
            alike = [p for p in every if p.kind == kind and (p.accumulated, p.previous_output, p.microbatch > 0) == flags]
            kept = [p for p in fullest(stage, stages, m, schedule) if p in alike]
            assert kept and max(alive(p) for p in kept) == max(alive(p) for p in alike)


@pytest.mark.parametrize("microbatches", [64, 4096, 65536])
def test_the_passes_walked_stay_few_however_many_micro_batches(microbatches):
    assert len(passes(0, 8, microbatches, "1f1b")) < 40
    assert len(passes(7, 8, microbatches, "gpipe")) <= 6
