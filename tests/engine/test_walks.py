"""The walks of a block's forward pass, its backward, the head's and the embeddings'.

The derivations below write out, for the small CS336 shape (s = 16 tokens, d = 32,
h = 4 heads of 8, d_ff = 48, V = 64; fp32, explicit attention, one sequence), what is alive
at the walks' highest ops; validation/timeline.json measured the same steps
(tests/engine/test_step_peak.py compares every phase). The properties tie each walk to the
activation rows that validation/results.json measured: what a block's backward frees is
exactly what the block saved.
"""

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from calc import ModelShape, TrainingSetup, activation_table
from calc.activations import bytes_per_block
from calc.backward import attention_rows, block_walk, embedding_walk, head_walk
from calc.errors import FieldError
from calc.forward import block_forward_walk
from calc.walk import Line, Walk, rises, sizes

SMALL = ModelShape(vocab=64, context=16, layers=2, d_model=32, heads=4, kv_heads=4, d_ff=48, ffn="swiglu",
                   norm="rmsnorm", bias=False, positions="rope", tied=False)
FP32 = TrainingSetup(batch=1, device="cpu", dtype="fp32", attention="explicit")


def highest(walk: Walk, batch: int = 1) -> int:
    return max(line.at(batch) for line in rises(walk))


def test_a_block_s_backward_peaks_at_w1_s_input_gradient():
    # Backward through the feed-forward layers first: W2's backward makes its weight's
    # gradient (32·48) and the product's (16·48), then frees the product it saved; the
    # product's backward makes SiLU's and W3's output gradients (2 · 16·48) and frees SiLU's
    # and W3's outputs; W3's backward makes its weight's (48·32) and its input's gradient
    # (16·32); SiLU's backward makes W1's output gradient (16·48) and frees W1's output; W1's
    # backward makes its weight's (48·32) and its input's (16·32) gradient. Then, above what
    # the block saved: the block output's gradient, three weight gradients, the gradients of
    # W3's and W1's input and of W1's output, less four saved outputs of 16·48 each.
    rise = 4 * (16 * 32 + 3 * 48 * 32 + 2 * 16 * 32 + 16 * 48 - 4 * 16 * 48)
    assert rise == 15_360
    z = sizes(SMALL, FP32, accumulating=False)
    assert highest(block_walk(SMALL, FP32, z, attention_rows(SMALL, FP32))) == rise


def test_the_head_s_backward_peaks_in_the_final_norm_s_square():
    # NLL's and log-softmax's backward make the log-probabilities' and the logits' gradient
    # and free the first and the log-probabilities; the head's makes its weight's gradient
    # (64·32) and its input's, and frees the logits' gradient and the input it saved; the
    # final norm's gain gradient (32) follows, x·rms's gradient of x (16·32) waits for the
    # square's, whose backward holds the mean's gradient expanded (16·32) and its three
    # tensors of x's size (x¹, 2·x¹ and their product) while x itself is still saved. By
    # then the log-probabilities (16·64), the head's input (16·32), the inverse RMS (16) and
    # x·rms (16·32) are freed.
    made = 64 * 32 + 32 + 16 * 32 + 16 * 32 + 3 * 16 * 32
    freed = 16 * 64 + 16 * 32 + 16 + 16 * 32
    z = sizes(SMALL, FP32, accumulating=False)
    assert highest(head_walk(SMALL, FP32, z)) == 4 * (made - freed) == 10_304


def test_accumulating_a_block_s_backward_peaks_at_its_first_op():
    # With a held gradient each new one is added into it in place and freed, so the weight
    # gradients no longer pile up: the most is at W2's backward, with the block output's
    # gradient (16·32), W2's new weight gradient (32·48) and the product's gradient (16·48).
    z = sizes(SMALL, FP32.replace(microbatches=3), accumulating=True)
    walk = block_walk(SMALL, FP32, z, attention_rows(SMALL, FP32))
    assert highest(walk) == 4 * (16 * 32 + 32 * 48 + 16 * 48) == 11_264


def test_a_tied_matrix_s_two_gradients_are_added_after_the_embedding_s():
    # The head's gradient of the shared matrix waits for the embedding's (64·32 each); the
    # engine adds them into a third: three matrices alive, with the first block's input
    # gradient (16·32) already freed.
    tied = SMALL.replace(tied=True)
    walk = embedding_walk(tied, FP32, sizes(tied, FP32, accumulating=False), tied=True)
    assert highest(walk) == 3 * 4 * 64 * 32


def test_the_embedding_s_backward_from_two_sequences_on_still_peaks_at_one_op_per_batch():
    # the first block's input gradient grows with the batch, the matrices do not: the walk
    # is the higher of two lines
    tied = SMALL.replace(tied=True)
    walk = embedding_walk(tied, FP32, sizes(tied, FP32, accumulating=False), tied=True)
    assert set(rises(walk)) == {Line(0, 3 * 4 * 64 * 32), Line(4 * 16 * 32, 2 * 4 * 64 * 32)}


def test_explicit_attention_copies_v_to_fold_the_batch_from_two_sequences_on():
    # P·V folds [B, h] into one batch axis: with two sequences V, seen head-first, is copied
    # (4 · B·h·s·d_h bytes) while the projection's own output is still named by the
    # Attention: the forward pass holds one more V at that op than with one sequence.
    one, two = FP32, FP32.replace(batch=2)
    walks = {setup.batch: block_forward_walk(SMALL, setup, sizes(SMALL, setup, accumulating=False),
                                             attention_rows(SMALL, setup)) for setup in (one, two)}
    assert len(walks[2].points) == len(walks[1].points) + 1


@st.composite
def reference_shapes(draw):
    heads = draw(st.integers(1, 4))
    kv_heads = draw(st.sampled_from([k for k in range(1, heads + 1) if heads % k == 0]))
    d_head = 8 * draw(st.integers(1, 4))
    return ModelShape(
        vocab=draw(st.integers(1, 300)), context=draw(st.integers(1, 48)), layers=draw(st.integers(1, 4)),
        d_model=heads * d_head, heads=heads, kv_heads=kv_heads, d_ff=draw(st.integers(1, 96)),
        ffn=draw(st.sampled_from(["swiglu", "gelu"])), norm=draw(st.sampled_from(["rmsnorm", "layernorm"])),
        bias=draw(st.booleans()), positions=draw(st.sampled_from(["rope", "learned"])), tied=draw(st.booleans()),
        max_positions=None)


setups = st.builds(
    TrainingSetup, batch=st.integers(1, 3), attention=st.sampled_from(["explicit", "flash"]),
    checkpoint=st.sampled_from(["none", "block"]), dtype=st.sampled_from(["fp32", "bf16", "bf16-master"]),
    device=st.sampled_from(["cpu", "cuda"]), microbatches=st.sampled_from([1, 2]))


def _measured_rows(shape, setup):
    """The block's activation rows, nothing recomputed; Hypothesis discards a combination
    that calc refuses everywhere (a CUDA attention kernel not derived, for one)."""
    try:
        return activation_table(shape, setup.replace(checkpoint="none"))
    except FieldError:
        assume(False)


@settings(max_examples=300, deadline=None)
@given(reference_shapes(), setups)
def test_a_block_s_backward_frees_exactly_what_it_saved(shape, setup):
    table = _measured_rows(shape, setup)
    z = sizes(shape, setup, accumulating=setup.microbatches > 1)
    walk = block_walk(shape, setup.replace(checkpoint="none"), z, attention_rows(shape, setup))
    copies = 2 * sum(m for m in _matrices(shape)) if setup.dtype == "bf16" else 0
    assert walk.baseline == Line(bytes_per_block(shape, table), copies)
    # what is left: the parameters' new gradients (none when accumulating) and the input's
    left = walk.left()
    assert all(name.startswith(("dW", "dg", "db", "in")) for name in left), left
    assert any(name.startswith("in") for name in left)
    assert setup.microbatches == 1 or len(left) == 1


@settings(max_examples=300, deadline=None)
@given(reference_shapes(), setups)
def test_a_block_s_forward_pass_ends_holding_what_it_saved_and_its_output(shape, setup):
    table = _measured_rows(shape, setup)
    z = sizes(shape, setup, accumulating=False)
    setup = setup.replace(checkpoint="none")
    walk = block_forward_walk(shape, setup, z, attention_rows(shape, setup))
    stream = 2 if setup.dtype == "bf16-master" else 4
    cached = 2 * (sum(_matrices(shape)) + (_biases(shape) if shape.bias else 0)) if setup.dtype == "bf16" else 0
    assert walk.live == Line(bytes_per_block(shape, table) + stream * shape.context * shape.d_model, cached)


@settings(max_examples=200, deadline=None)
@given(reference_shapes(), setups)
def test_a_checkpointed_block_recomputes_what_it_saved_and_frees_it(shape, setup):
    _measured_rows(shape, setup)
    setup = setup.replace(checkpoint="block")
    z = sizes(shape, setup, accumulating=False)
    walk = block_walk(shape, setup, z, attention_rows(shape, setup))
    stream = 2 if setup.dtype == "bf16-master" else 4
    assert walk.baseline == Line(stream * shape.context * shape.d_model)  # the block's input alone
    assert all(name.startswith(("dW", "dg", "db", "in")) for name in walk.left())


def _matrices(shape: ModelShape) -> tuple[int, ...]:
    """A block's weight matrices, in values: W_Q, W_K, W_V, W_O, W1, W2 (and W3)."""
    q, kv, d, f = shape.heads * shape.d_head, shape.kv_heads * shape.d_head, shape.d_model, shape.d_ff
    return (d * q, d * kv, d * kv, q * d, d * f, f * d) + ((d * f,) if shape.ffn == "swiglu" else ())


def _biases(shape: ModelShape) -> int:
    q, kv, d, f = shape.heads * shape.d_head, shape.kv_heads * shape.d_head, shape.d_model, shape.d_ff
    return q + 2 * kv + d + f + d + (f if shape.ffn == "swiglu" else 0)


def test_the_moments_say_where_they_come_from():
    from calc import PRESETS
    from calc.peak import moments_table
    assert "timeline" in moments_table(SMALL, FP32).notes[0]  # measured: the CPU, the reference implementation
    assert "not yet measured" in moments_table(SMALL, FP32.replace(device="cuda")).notes[0]
    assert "upper bound" in moments_table(PRESETS["llama-3-8b"], TrainingSetup()).notes[0]  # Hugging Face code
