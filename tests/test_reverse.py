"""The reverse calculator finds a setup exactly from a figure calc made for it."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc import PRESETS, TrainingSetup, activation_table
from calc.extras import claim
from calc.inputs import InputError, parse_inputs
from calc.reverse import search
from calc.views import render_view


@settings(max_examples=60, deadline=None)
@given(preset=st.sampled_from(["cs336-gpt2-xl", "gpt2-small", "llama-2-7b"]), batch=st.integers(1, 32),
       accounting=st.sampled_from(["seed", "cs336", "autograd"]), attention=st.sampled_from(["explicit", "flash"]),
       checkpoint=st.sampled_from(["none", "block"]), dtype=st.sampled_from(["fp32", "bf16"]),
       scope=st.sampled_from(["sequence", "batch"]))
def test_a_figure_calc_produced_is_found_exactly(preset, batch, accounting, attention, checkpoint, dtype, scope):
    setup = TrainingSetup(batch=batch, accounting=accounting, attention=attention, checkpoint=checkpoint, dtype=dtype)
    figure = activation_table(PRESETS[preset], setup).bytes_for_batch(batch if scope == "batch" else 1)
    inputs = parse_inputs({"preset": preset, "batch": str(batch)})
    best = search(inputs, *claim({"claim": f"{figure} B", "claim_scope": scope}))[0]
    assert best.error == 0
    found = setup.replace(accounting=best.accounting, attention=best.attention, checkpoint=best.checkpoint, dtype=best.dtype)
    assert activation_table(PRESETS[preset], found).bytes_for_batch(batch if scope == "batch" else 1) == figure


def test_the_seeds_2_265_gb_has_no_exact_match_and_the_verdict_says_how_far():
    inputs = parse_inputs({})
    matches = search(inputs, *claim({"claim": "2.265 GB"}))
    assert matches[0].error > Fraction(1, 20)  # nothing within 5 %
    assert "away." in render_view("reverse", {"claim": "2.265 GB"}, "r")


@pytest.mark.parametrize("text", ["-2 GB", "0", "lots", "1e40 GB", "", "2.265 TB"])
def test_nonsense_claims_get_a_clear_message(text):
    with pytest.raises(InputError) as error:
        claim({"claim": text})
    assert set(error.value.errors) == {"claim"}


def test_bad_scope_is_refused():
    with pytest.raises(InputError):
        claim({"claim_scope": "per token"})
