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
from calc.peak import moments_table

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
