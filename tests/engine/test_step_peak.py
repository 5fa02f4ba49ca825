"""The whole step's peak against a live-tensor timeline of real CPU steps.

validation/timeline.json holds what `python -m validation.timeline` measured: the most
bytes alive at once during a steady-state training step of the reference model at a
small shape (every storage tracked from allocation to free, on the CPU, torch 2.13), for
each optimizer implementation, precision, attention, checkpointing, accumulation and
logits-keeping loop. These tests need no torch.
"""

import json
from pathlib import Path

import pytest

from calc import ModelShape, TrainingSetup
from calc.peak import moments_table, peak_bytes

TIMELINE = json.loads((Path(__file__).resolve().parents[2] / "validation" / "timeline.json").read_text())
SHAPE = ModelShape(**TIMELINE["shape"])

# The small shape's parameters, written out: token embedding and LM head 64·32 each; per
# block two RMSNorm gains (32 each), W_Q, W_K, W_V, W_O (32·32 each) and W1, W2, W3 (48·32
# each); the final norm's gain.
P = 2 * 64 * 32 + 2 * (2 * 32 + 4 * 32 * 32 + 3 * 48 * 32) + 32
RESIDENT = 4 * P + 8 * P + 2 * 16 * 4 * 4 + 21 * 4
"""fp32 parameters, AdamW's two moments, the RoPE cos and sin buffers ([16, 4] fp32 each),
and on the CPU the optimizer's 21 step counts (one fp32 scalar per parameter tensor)."""

def setup_of(step) -> TrainingSetup:
    return TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                         checkpoint=step["checkpoint"], device="cpu", optimizer_impl=step["optimizer"],
                         microbatches=step["microbatches"], keep_logits=step["keep_logits"])


def step_id(step) -> str:
    return (f"B{step['batch']}-{step['optimizer']}-{step['dtype']}-{step['attention']}-{step['checkpoint']}"
            f"-M{step['microbatches']}{'-logits' if step['keep_logits'] else ''}")


def test_the_small_shape_has_the_parameters_written_out():
    assert P == 21_664
    from calc.parameters import parameter_count
    assert parameter_count(SHAPE) == P


def test_foreach_adamw_holds_twenty_bytes_a_parameter_at_its_step():
    # One sequence of 16 tokens: ids and targets (int64), the last loss (fp32 scalar); then
    # parameters, moments (12 bytes), gradients (4) and _foreach_sqrt of every second
    # moment (4): the measured peak of the step, to the byte.
    step = next(s for s in TIMELINE["steps"] if (s["batch"], s["optimizer"], s["dtype"], s["attention"],
                                                   s["microbatches"], s["keep_logits"]) ==
                (1, "foreach", "fp32", "explicit", 1, False))
    expected = RESIDENT + 2 * 16 * 8 + 4 + 4 * P + 4 * P
    assert expected == step["peak"] == 434_136
    assert peak_bytes(SHAPE, setup_of(step)) == expected


EXACT_PHASES = {"forward": ("forward-end",), "embedding": ("embedding-backward",), "optimizer": ("optimizer-step",)}
"""The phases of the step whose most live bytes calc's moments give to the byte."""

BOUNDED_PHASES = {"head": ("head-backward", "head-weight-gradient"), "last-block": ("last-block-backward",),
                  "first-block": ("first-block-backward",)}
"""The phases where calc's moments are an upper bound: inside the final norm's and each
block's backward, calc adds every saved tensor not yet freed at the phase's start to the
largest gradients and temporaries alive together, which no single op sees at once."""


def moment_bytes(step) -> dict[str, int]:
    return {r.key: r.count for r in moments_table(SHAPE, setup_of(step)).rows}


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_the_forward_pass_embedding_backward_and_optimizer_step_equal_the_timeline_to_the_byte(step):
    moments = moment_bytes(step)
    for phase, keys in EXACT_PHASES.items():
        assert max(moments[k] for k in keys) == step["phases"][phase], phase


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_inside_the_final_norm_and_the_blocks_the_moments_are_never_below_the_timeline(step):
    moments = moment_bytes(step)
    for phase, keys in BOUNDED_PHASES.items():
        # at the small shape, where a block's saved tensors are a large share of the step, the
        # bound is at most 11 % above (most under checkpointing, which adds the recomputed block)
        assert step["phases"][phase] <= max(moments[k] for k in keys) <= step["phases"][phase] * 1.11, phase


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_backward_through_log_softmax_is_a_moment_the_step_reaches(step):
    # The head-backward moment is exact: the measured head phase reaches at least it, and
    # where the phase peaks in log-softmax's backward (batch 4 here) equals it.
    assert moment_bytes(step)["head-backward"] <= step["phases"]["head"]
    if step["batch"] == 4:
        assert moment_bytes(step)["head-backward"] == step["phases"]["head"]


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_the_peak_is_the_highest_phase_and_never_below_it(step):
    assert step["peak"] == max(step["phases"].values())
    assert step["peak"] <= peak_bytes(SHAPE, setup_of(step)) <= step["peak"] * 1.10


def test_an_accumulated_gradient_exists_twice_until_it_is_added():
    # Accumulating over 3 micro-batches, the embedding's backward makes its new gradient
    # (64 · 32 fp32 values) while the held one exists: the last micro-batch's embedding
    # phase is 8,192 bytes above the same phase without accumulation, to the byte.
    def phase(microbatches):
        return next(s for s in TIMELINE["steps"] if (s["batch"], s["optimizer"], s["dtype"], s["attention"],
                                                       s["microbatches"], s["keep_logits"]) ==
                    (1, "fused", "fp32", "flash", microbatches, False))["phases"]["embedding"]
    assert phase(3) - phase(1) == 64 * 32 * 4


def test_accumulating_keeps_every_gradient_through_later_micro_batches():
    one, three = (setup_of(dict(TIMELINE["steps"][0], microbatches=m)) for m in (1, 3))
    forward_end = {m: {r.key: r.count for r in moments_table(SHAPE, s).rows}["forward-end"] for m, s in ((1, one), (3, three))}
    assert forward_end[3] - forward_end[1] == 4 * P
