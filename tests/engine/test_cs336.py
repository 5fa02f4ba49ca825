"""The CS336 assignment's list: L·(16·s·d + 2·h·s²) + s·d + 2·s·V values when d_ff = 4·d."""

from hypothesis import given
from hypothesis import strategies as st

from calc import PRESETS, ModelShape, TrainingSetup, activation_table


def test_seed_model_under_the_assignment_list():
    L, s, d, h, V = 48, 1024, 1600, 25, 50257
    expected = L * (16 * s * d + 2 * h * s * s) + s * d + 2 * s * V
    assert expected == 3_879_438_336
    table = activation_table(PRESETS["cs336-gpt2-xl"], TrainingSetup(accounting="cs336"))
    assert table.total_count == expected
    assert table.total_bytes == 4 * expected == 15_517_753_344


@given(L=st.integers(1, 8), s=st.integers(1, 64), h=st.integers(1, 8), d_head=st.integers(1, 16),
       V=st.integers(1, 1000))
def test_closed_form_holds_for_any_shape_with_d_ff_4d(L, s, h, d_head, V):
    d = h * d_head
    shape = ModelShape(vocab=V, context=s, layers=L, d_model=d, heads=h, kv_heads=h, d_ff=4 * d, positions="learned")
    table = activation_table(shape, TrainingSetup(accounting="cs336"))
    assert table.total_count == L * (16 * s * d + 2 * h * s * s) + s * d + 2 * s * V
