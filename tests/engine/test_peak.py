from hypothesis import given, settings
from hypothesis import strategies as st

from calc import PRESETS, TrainingSetup, activation_table, largest_batch, peak_bytes

SEED = PRESETS["cs336-gpt2-xl"]
P = 2_127_057_600


def test_seed_and_cs336_peaks_are_their_own_sums():
    for accounting, activations in (("seed", 16_262_172_672), ("cs336", 15_517_753_344)):
        assert peak_bytes(SEED, TrainingSetup(accounting=accounting)) == 16 * P + activations


def test_autograd_peak_is_above_the_saved_total_plus_fixed_state():
    setup = TrainingSetup()
    saved = activation_table(SEED, setup).bytes_for_batch()
    assert peak_bytes(SEED, setup) > 12 * P + saved  # parameters, AdamW state, everything saved


def test_the_peak_holds_everything_saved_and_the_logits_gradient_at_once():
    # Backward starts with every saved tensor alive (nothing is freed before the loss's
    # backward runs), the parameters and AdamW's two moments (4 + 8 bytes a parameter; the
    # gradients were set to None after the last step) and the gradient of the logits,
    # B·s·V fp32 values: the peak is at least their sum, whatever else it adds.
    for batch in (1, 4):
        setup = TrainingSetup(batch=batch)
        saved = activation_table(SEED, setup).bytes_for_batch()
        logits_gradient = batch * 1024 * 50257 * 4
        assert peak_bytes(SEED, setup) >= 12 * P + saved + logits_gradient


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


@settings(max_examples=150, deadline=None)
@given(budget=st.integers(10**5, 10**8), heads=st.sampled_from([1, 2, 4]), context=st.integers(1, 64),
       positions=st.sampled_from(["rope", "learned"]), attention=st.sampled_from(["explicit", "flash"]),
       checkpoint=st.sampled_from(["none", "block"]), dtype=st.sampled_from(["fp32", "bf16"]),
       microbatches=st.sampled_from([1, 2]), pp=st.sampled_from([1, 2]), tied=st.booleans())
def test_largest_batch_of_a_small_model_fits_and_one_more_does_not(budget, heads, context, positions, attention,
                                                                  checkpoint, dtype, microbatches, pp, tied):
    # Small models, where the walks' ops (explicit attention's copies from two sequences on,
    # the weight gradients, the tied matrix's) decide the largest batch
    from calc import ModelShape
    shape = ModelShape(vocab=64, context=context, layers=2, d_model=8 * heads, heads=heads, kv_heads=heads, d_ff=24,
                       ffn="swiglu", norm="rmsnorm", bias=False, positions=positions, tied=tied, max_positions=None)
    setup = TrainingSetup(attention=attention, checkpoint=checkpoint, dtype=dtype, device="cpu",
                          microbatches=microbatches, pp=pp, schedule="1f1b" if microbatches >= pp else "gpipe")
    best = largest_batch(shape, setup, budget)
    if best:
        assert peak_bytes(shape, setup.replace(batch=best)) <= budget
    assert peak_bytes(shape, setup.replace(batch=best + 1)) > budget
