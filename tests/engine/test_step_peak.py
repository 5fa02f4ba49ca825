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

EXACT_AT = {"_log_softmax_backward_data": "head-backward", "_foreach_sqrt": "optimizer-step",
            "nll_loss_forward": "forward-end"}
"""Where the measured peak lies at one of the moments calc counts to the byte."""


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


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_the_peak_is_never_below_the_measured_step(step):
    assert peak_bytes(SHAPE, setup_of(step)) >= step["peak"]


@pytest.mark.parametrize("step", [s for s in TIMELINE["steps"] if s["at"].split(".")[0].removeprefix("aten.") in EXACT_AT
                                  or (s["optimizer"] == "for-loop" and s["at"] == "aten.div.Tensor")], ids=step_id)
def test_where_the_peak_lies_at_an_exact_moment_calc_equals_it_to_the_byte(step):
    op = step["at"].split(".")[0].removeprefix("aten.")
    moment = EXACT_AT.get(op, "optimizer-step")
    moments = {r.key: r.count for r in moments_table(SHAPE, setup_of(step)).rows}
    assert moments[moment] == step["peak"]


def test_the_block_moments_are_an_upper_bound_within_a_tenth():
    # Inside a block's backward calc adds every saved tensor of the block to the largest
    # gradients alive together, an upper bound: at the small shape it is at most 10 % above.
    for step in TIMELINE["steps"]:
        assert peak_bytes(SHAPE, setup_of(step)) <= step["peak"] * 1.10, step_id(step)


def test_accumulating_keeps_every_gradient_through_later_micro_batches():
    one, three = (setup_of(dict(TIMELINE["steps"][0], microbatches=m)) for m in (1, 3))
    forward_end = {m: {r.key: r.count for r in moments_table(SHAPE, s).rows}["forward-end"] for m, s in ((1, one), (3, three))}
    assert forward_end[3] - forward_end[1] == 4 * P
