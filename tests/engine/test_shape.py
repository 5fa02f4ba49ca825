import pytest

from calc import ModelShape, TrainingSetup, preset

GOOD = dict(vocab=100, context=8, layers=2, d_model=16, heads=4, kv_heads=2, d_ff=32)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"heads": 3}, "heads"),
        ({"kv_heads": 3}, "kv_heads"),
        ({"d_model": 0}, "d_model"),
        ({"layers": -1}, "layers"),
        ({"vocab": 10.5}, "vocab"),
        ({"context": "1024"}, "context"),
        ({"d_ff": True}, "d_ff"),
        ({"ffn": "relu"}, "ffn"),
        ({"norm": "batchnorm"}, "norm"),
        ({"positions": "alibi"}, "positions"),
        ({"bias": "yes"}, "bias"),
        ({"layers": 10**9}, "layers"),
    ],
)
def test_impossible_shapes_name_the_field(changes, field):
    with pytest.raises(ValueError) as error:
        ModelShape(**(GOOD | changes))
    assert str(error.value).startswith(field)


def test_rope_needs_an_even_head_size():
    with pytest.raises(ValueError, match="even"):
        ModelShape(**(GOOD | {"d_model": 12, "heads": 4}))


def test_shapes_are_frozen_and_replace_validates():
    shape = ModelShape(**GOOD)
    with pytest.raises(AttributeError):
        shape.layers = 3
    assert shape.replace(layers=3).layers == 3
    with pytest.raises(ValueError):
        shape.replace(heads=5)


@pytest.mark.parametrize("changes", [{"batch": 0}, {"batch": 1.5}, {"dtype": "fp16"}, {"attention": "sparse"},
                                     {"checkpoint": "all"}, {"optimizer": "lion"}, {"accounting": "guess"}])
def test_bad_setups_are_refused(changes):
    with pytest.raises(ValueError):
        TrainingSetup(**changes)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="gpt2-xl"):
        preset("gpt-5")
