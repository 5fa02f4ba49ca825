"""The whole step's peak against a live-tensor timeline of real CPU steps.

validation/timeline.json holds what `python -m validation.timeline` measured: the most
bytes alive at once during a steady-state training step of the reference model, phase by
phase (every storage tracked from allocation to free, on the CPU, torch 2.13): on five
small shapes for each precision, attention, checkpointing and accumulation, and on the
small CS336 shape also for each optimizer implementation and a logits-keeping loop. These
tests need no torch; tests/engine/test_walks.py derives the walks' highest ops by hand.
"""

import json
from pathlib import Path

import pytest

from calc import ModelShape, TrainingSetup
from calc.peak import moments_table, tensor_peak_bytes as peak_bytes

TIMELINE = json.loads((Path(__file__).resolve().parents[2] / "validation" / "timeline.json").read_text())
SHAPES = {name: ModelShape(**cfg) for name, cfg in TIMELINE["shapes"].items()}
SHAPE = SHAPES["small-cs336"]

# The small shape's parameters, written out: token embedding and LM head 64·32 each; per
# block two RMSNorm gains (32 each), W_Q, W_K, W_V, W_O (32·32 each) and W1, W2, W3 (48·32
# each); the final norm's gain.
P = 2 * 64 * 32 + 2 * (2 * 32 + 4 * 32 * 32 + 3 * 48 * 32) + 32
RESIDENT = 4 * P + 8 * P + 2 * 16 * 4 * 4 + 21 * 4
"""fp32 parameters, AdamW's two moments, the RoPE cos and sin buffers ([16, 4] fp32 each),
and on the CPU the optimizer's 21 step counts (one fp32 scalar per parameter tensor)."""

def setup_of(step) -> TrainingSetup:
    """calc's setup for a measured step: torch.optim's AdamW by its implementation, or
    bitsandbytes' AdamW8bit."""
    optimizer = {"optimizer": step["optimizer"]} if step["optimizer"] == "adamw-8bit" else {
        "optimizer_impl": step["optimizer"]}
    return TrainingSetup(batch=step["batch"], dtype=step["dtype"], attention=step["attention"],
                         checkpoint=step["checkpoint"], device="cpu", microbatches=step["microbatches"],
                         keep_logits=step["keep_logits"], **optimizer)


def step_id(step) -> str:
    return (f"{step['shape']}-B{step['batch']}-{step['optimizer']}-{step['dtype']}-{step['attention']}-{step['checkpoint']}"
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


def test_adamw_8bit_keeps_8_bit_moments_for_large_tensors_and_fp32_ones_for_small():
    # The small shape with a 256-token vocabulary: its embedding and head (256·32 = 8,192
    # values each) keep two uint8 moments and an fp32 scale a block of 256 for each; every
    # other tensor is under 4,096 values and keeps two fp32 moments; the two 8-bit maps are
    # 256 fp32 each. The measured steps of this shape equal calc (the tests below).
    from calc.fixed import fixed_table
    shape = SHAPES["small-cs336-v256"]
    values = 2 * 256 * 32 + 2 * (2 * 32 + 4 * 32 * 32 + 3 * 48 * 32) + 32
    large = 2 * (2 * 8_192 + 2 * 4 * (8_192 // 256))
    expected = large + 8 * (values - 2 * 8_192) + 2 * 256 * 4
    assert expected == 175_872
    fixed = {r.key: r.bytes for r in fixed_table(shape, TrainingSetup(optimizer="adamw-8bit", device="cpu")).rows}
    assert fixed["optimizer"] == expected
    assert any(s["shape"] == "small-cs336-v256" and s["optimizer"] == "adamw-8bit" for s in TIMELINE["steps"])


PHASE_MOMENTS = {"forward": ("block-forward", "forward-end"), "head": ("head-backward",),
                 "last-block": ("last-block-backward",), "first-block": ("first-block-backward",),
                 "embedding": ("embedding-backward",), "optimizer": ("optimizer-step",)}
"""The moments of calc's step that model each measured phase: the forward pass peaks in the
last block or at its end."""


def moment_bytes(step) -> dict[str, int]:
    return {r.key: r.count for r in moments_table(SHAPES[step["shape"]], setup_of(step)).rows}


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_every_phase_of_the_step_equals_the_timeline_to_the_byte(step):
    moments = moment_bytes(step)
    measured = dict(step["phases"])
    middle = measured.pop("middle-blocks", None)
    assert {phase: max(moments[key] for key in keys) for phase, keys in PHASE_MOMENTS.items()} == measured
    if middle is not None:  # the blocks in between lie between the last and the first
        assert middle <= max(measured["last-block"], measured["first-block"])


@pytest.mark.parametrize("step", TIMELINE["steps"], ids=step_id)
def test_the_peak_is_the_highest_phase_and_equals_the_timeline(step):
    assert step["peak"] == max(step["phases"].values())
    assert peak_bytes(SHAPES[step["shape"]], setup_of(step)) == step["peak"]


def test_an_accumulated_gradient_exists_twice_until_it_is_added():
    # Accumulating over 3 micro-batches, the embedding's backward makes its new gradient
    # (64 · 32 fp32 values) while the held one exists: the last micro-batch's embedding
    # phase is 8,192 bytes above the same phase without accumulation, to the byte.
    def phase(microbatches):
        return next(s for s in TIMELINE["steps"] if (s["shape"], s["batch"], s["optimizer"], s["dtype"],
                                                       s["attention"], s["microbatches"], s["keep_logits"]) ==
                    ("small-cs336", 1, "fused", "fp32", "flash", microbatches, False))["phases"]["embedding"]
    assert phase(3) - phase(1) == 64 * 32 * 4


def test_accumulating_keeps_every_gradient_through_later_micro_batches():
    one, three = (setup_of(dict(TIMELINE["steps"][0], microbatches=m)) for m in (1, 3))
    forward_end = {m: {r.key: r.count for r in moments_table(SHAPE, s).rows}["forward-end"] for m, s in ((1, one), (3, three))}
    assert forward_end[3] - forward_end[1] == 4 * P
