from hypothesis import given, settings
from hypothesis import strategies as st

from calc import PRESETS, TrainingSetup, activation_table, largest_batch, moments_table, peak_bytes

SEED = PRESETS["cs336-gpt2-xl"]
P = 2_127_057_600


def test_seed_and_cs336_peaks_are_their_own_sums():
    for accounting, activations in (("seed", 16_262_172_672), ("cs336", 15_517_753_344)):
        assert peak_bytes(SEED, TrainingSetup(accounting=accounting)) == 16 * P + activations


def test_autograd_peak_is_above_the_saved_total_plus_fixed_state():
    setup = TrainingSetup()
    saved = activation_table(SEED, setup).bytes_for_batch()
    assert peak_bytes(SEED, setup) > 12 * P + saved  # parameters, AdamW state, everything saved


def test_head_backward_is_the_worst_moment_at_batch_4():
    # at the start of backward every saved tensor is still alive, and the loss adds two
    # B·s·V fp32 gradients (2 · 4 · 1024 · 50257 · 4 bytes) on top of the head's gradients.
    moments = {r.key: r.count for r in moments_table(SEED, TrainingSetup(batch=4)).rows}
    assert max(moments, key=moments.get) == "head-backward"
    assert moments["head-backward"] - moments["forward-end"] == (4 * 1024 * 50257 * 8 + 4 * (1600 + 50257 * 1600)
                                                                 - 4 * 1024 * 50257 * 4)


@settings(max_examples=40, deadline=None)
@given(budget=st.integers(10**9, 10**12), attention=st.sampled_from(["explicit", "flash"]),
       checkpoint=st.sampled_from(["none", "block"]), dtype=st.sampled_from(["fp32", "bf16"]),
       accounting=st.sampled_from(["seed", "cs336", "autograd"]))
def test_largest_batch_fits_and_one_more_does_not(budget, attention, checkpoint, dtype, accounting):
    setup = TrainingSetup(attention=attention, checkpoint=checkpoint, dtype=dtype, accounting=accounting)
    best = largest_batch(SEED, setup, budget)
    if best:
        assert peak_bytes(SEED, setup.replace(batch=best)) <= budget
    assert peak_bytes(SEED, setup.replace(batch=best + 1)) > budget


def test_seed_model_fits_two_sequences_in_80_gb_by_the_seeds_own_count():
    # 16 bytes/parameter of state plus 16,262,172,672 bytes per sequence
    assert (80 * 10**9 - 16 * P) // 16_262_172_672 == 2
    assert largest_batch(SEED, TrainingSetup(accounting="seed"), 80 * 10**9) == 2
