"""Properties every accounting must have, for any valid shape and setup."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc import ModelShape, TrainingSetup, activation_table, parameter_table
from calc.activations import bytes_per_block
from calc.errors import FieldError


@st.composite
def shapes(draw):
    heads = draw(st.integers(1, 8))
    kv_heads = draw(st.sampled_from([k for k in range(1, heads + 1) if heads % k == 0]))
    d_head = 8 * draw(st.integers(1, 8))  # CUDA's fused attention kernels take head sizes in eights
    return ModelShape(
        vocab=draw(st.integers(1, 5000)), context=draw(st.integers(1, 256)), layers=draw(st.integers(1, 12)),
        d_model=heads * d_head, heads=heads, kv_heads=kv_heads, d_ff=draw(st.integers(1, 512)),
        ffn=draw(st.sampled_from(["swiglu", "gelu"])), norm=draw(st.sampled_from(["rmsnorm", "layernorm"])),
        bias=draw(st.booleans()), positions=draw(st.sampled_from(["rope", "learned"])), tied=draw(st.booleans()),
    )


setups = st.builds(
    TrainingSetup,
    batch=st.integers(1, 64), accounting=st.sampled_from(["seed", "cs336", "autograd"]),
    attention=st.sampled_from(["explicit", "flash"]), checkpoint=st.sampled_from(["none", "block"]),
    dtype=st.sampled_from(["fp32", "bf16"]), optimizer=st.sampled_from(["adamw", "sgd"]),
    device=st.sampled_from(["cuda", "cpu"]),
)


@settings(max_examples=300)
@given(shapes(), setups)
def test_activations_are_affine_in_batch(shape, setup):
    at = [activation_table(shape, setup.replace(batch=b)).bytes_for_batch() for b in (1, 2, 3, setup.batch)]
    slope = at[1] - at[0]
    assert slope > 0
    assert at[2] - at[1] == slope
    assert at[3] == at[0] + (setup.batch - 1) * slope


@settings(max_examples=300)
@given(shapes(), setups)
def test_one_more_layer_adds_exactly_one_blocks_worth(shape, setup):
    # The embedding and the head do not grow with depth, and every block keeps the same:
    # a layer more adds one block's bytes (and what each block keeps once per step, such as
    # CUDA attention's RNG state), and a block's bytes do not depend on depth.
    setup = setup.replace(batch=1)
    shallow, deep = activation_table(shape, setup), activation_table(shape.replace(layers=shape.layers + 1), setup)
    block = bytes_per_block(shape, shallow)
    per_step_per_block = sum(r.bytes for r in shallow.rows if r.per_step and r.formula.terms[0][0] == "L") // shape.layers
    assert block > 0
    assert bytes_per_block(shape.replace(layers=shape.layers + 1), deep) == block
    assert deep.bytes_for_batch(1) - shallow.bytes_for_batch(1) == block + per_step_per_block


@settings(max_examples=200)
@given(shapes(), setups)
def test_more_layers_never_means_less_memory(shape, setup):
    deeper = shape.replace(layers=shape.layers + 1)
    assert activation_table(deeper, setup).bytes_for_batch() >= activation_table(shape, setup).bytes_for_batch()
    assert parameter_table(deeper).total_count > parameter_table(shape).total_count


@settings(max_examples=200)
@given(shapes(), setups)
def test_seed_and_cs336_halve_in_bf16(shape, setup):
    setup = setup.replace(accounting="seed" if setup.accounting == "autograd" else setup.accounting)
    fp32 = activation_table(shape, setup.replace(dtype="fp32")).bytes_for_batch()
    assert activation_table(shape, setup.replace(dtype="bf16")).bytes_for_batch() * 2 == fp32


@given(st.sampled_from([TrainingSetup(),
                        TrainingSetup(dtype="bf16", finetune="lora", attention="flash", tp=2, sp=True)]),
       st.one_of(st.integers(-5, 2_000_000), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3)))
def test_replacing_the_batch_alone_is_building_the_setup_anew(setup, batch):
    # replace(batch=...) skips re-checking the other fields: it must equal (or refuse as)
    # the setup built with every field checked
    try:
        built = TrainingSetup(**{**setup.as_dict(), "batch": batch})
    except FieldError as error:
        with pytest.raises(FieldError) as refused:
            setup.replace(batch=batch)
        assert refused.value.field == error.field == "batch"
        return
    replaced = setup.replace(batch=batch)
    assert replaced == built and hash(replaced) == hash(built) and replaced.as_dict() == built.as_dict()
