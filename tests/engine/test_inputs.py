import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calc import inputs as inputs_module
from calc.fields import FIELDS
from calc.inputs import InputError, field_values, inputs_to_params, parse_inputs
from calc.site.browser import forget_everything


def test_no_parameters_means_the_seed_model_and_defaults():
    inputs = parse_inputs({})
    assert inputs.preset == "cs336-gpt2-xl" and inputs.shape.d_model == 1600
    assert inputs.setup.batch == 1 and inputs.unit == "GB"
    # its driver's total, less 1 GiB and 5 % of the total (rounded down) for the allocator's cache
    card = 81_559 * 2**20
    assert (inputs.gpu, inputs.budget) == ("h100-80gb", card - 2**30 - card // 20) == ("h100-80gb", 80_171_027_661)


def test_a_typed_budget_is_another_gpu_and_keeps_its_link():
    inputs = parse_inputs({"budget": "40 GiB"})
    assert (inputs.gpu, inputs.budget) == ("custom", 40 * 2**30)
    assert inputs_to_params(inputs) == {"gpu": "custom", "budget": "40 GiB"}
    assert parse_inputs(inputs_to_params(inputs)) == inputs


def test_a_card_less_its_reserve_and_the_allocator_s_cache():
    inputs = parse_inputs({"gpu": "a100-40gb", "reserve": "512 MiB", "fragmentation": "2.5 %"})
    card = 40_960 * 2**20
    assert inputs.budget == card - 512 * 2**20 - card * 25 // 1000
    assert inputs_to_params(inputs) == {"gpu": "a100-40gb", "reserve": "512 MiB", "fragmentation": "2.5 %"}
    assert parse_inputs({"gpu": "a100-40gb", "fragmentation": "0"}).budget == card - 2**30
    with pytest.raises(InputError) as error:
        parse_inputs({"gpu": "t4", "reserve": "16 GiB"})
    assert list(error.value.errors) == ["reserve"]


def test_an_h200_is_its_driver_total_less_the_reserve_and_the_allocator_s_cache():
    # nvidia-smi on an H200 SXM reads 143771MiB (NVIDIA/cuda-samples issue #311): about
    # 140.4 GiB, or 150.75 GB, of which the default reserve of 1 GiB and 5 % for the
    # allocator's cache (7,537,741,004 bytes, rounded down) are not for tensors.
    inputs = parse_inputs({"gpu": "h200"})
    assert inputs.budget == 143_771 * 1_048_576 - 1_073_741_824 - 7_537_741_004 == 142_143_337_268


@pytest.mark.parametrize("text, message", [("51", "at most 50"), ("-1", "percentage"), ("5 %%", "percentage"),
                                           ("1e1", "percentage"), ("", "percentage")])
def test_a_fragmentation_share_out_of_range_is_named(text, message):
    with pytest.raises(InputError) as error:
        parse_inputs({"fragmentation": text})
    assert message in error.value.errors["fragmentation"]


def test_every_bad_field_gets_its_own_message():
    with pytest.raises(InputError) as error:
        parse_inputs({"batch": "0", "layers": "two", "dtype": "fp8", "budget": "-1 GB", "unit": "kB", "preset": "nope"})
    assert set(error.value.errors) == {"batch", "layers", "dtype", "budget", "unit", "preset"}


def test_cross_field_errors_name_the_field():
    with pytest.raises(InputError) as error:
        parse_inputs({"heads": "7"})
    assert error.value.errors == {"heads": "heads (7) must divide d_model (1600)"}


def test_hostile_text_is_reported_not_executed():
    with pytest.raises(InputError) as error:
        parse_inputs({"batch": "<script>alert(1)</script>"})
    assert "<script>" in error.value.errors["batch"]  # plain text; the page inserts it as text


@pytest.mark.parametrize("params", [{}, {"batch": "8", "dtype": "bf16"}, {"preset": "llama-3-8b", "context": "4096"},
                                    {"budget": "40 GiB", "unit": "GiB", "tied": "true"}])
def test_params_round_trip_through_the_short_form(params):
    inputs = parse_inputs(params)
    assert parse_inputs(inputs_to_params(inputs)) == inputs
    assert parse_inputs(field_values(inputs)) == inputs


def test_the_short_form_leaves_out_defaults():
    assert inputs_to_params(parse_inputs({"batch": "1", "preset": "cs336-gpt2-xl", "d_model": "1600"})) == {}


# A page sends every field again at each edit, and calc remembers what it built from each
# set of fields (a setup apart from its batch, which is checked alone, and each setup's
# checks once for every batch). No answer may depend on the questions asked before it.
PAGE_STATES = st.fixed_dictionaries({}, optional={
    "preset": st.sampled_from(["cs336-gpt2-xl", "gpt2-small", "llama-3-8b", "llama-2"]),
    "batch": st.sampled_from(["1", "2", "7", "0", "two"]),
    "b_batch": st.sampled_from(["1", "3"]),
    "dtype": st.sampled_from(["fp32", "bf16", "bf16-master"]),
    "b_dtype": st.sampled_from(["fp32", "bf16"]),
    "attention": st.sampled_from(["explicit", "flash"]),
    "checkpoint": st.sampled_from(["none", "selective", "block"]),
    "accounting": st.sampled_from(["seed", "cs336", "autograd", "megatron"]),
    "implementation": st.sampled_from(["reference", "scratch", "hf"]),
    "finetune": st.sampled_from(["full", "lora", "qlora"]),
    "dp": st.sampled_from(["1", "2"]),
    "zero": st.sampled_from(["0", "3"]),
    "layers": st.sampled_from(["2", "48"]),
    "gpu": st.sampled_from(["h100-80gb", "custom"]),
    "budget": st.sampled_from(["40 GiB"]),
})


def _answer(params: dict):
    """What calc makes of a page's fields: its Inputs and their link, or its messages."""
    try:
        inputs = parse_inputs(params)
    except InputError as e:
        return e.errors
    return inputs, field_values(inputs), inputs_to_params(inputs)


@settings(max_examples=150, deadline=None)
@given(st.lists(PAGE_STATES, min_size=2, max_size=5))
def test_no_answer_depends_on_the_questions_before_it(states):
    remembering = [_answer(state) for state in states]
    afresh = []
    for state in states:
        forget_everything()
        afresh.append(_answer(state))
    assert remembering == afresh
    for state, answer in zip(states, afresh):
        if isinstance(answer, tuple):
            inputs, _, link = answer
            batch = int(state.get("batch", "1"))  # the batch each setup was made with is the page's
            assert (inputs.setup.batch, inputs.compare.batch) == (batch, int(state.get("b_batch", batch)))
            assert parse_inputs(link) == inputs  # a link gives back the same inputs


@settings(max_examples=100, deadline=None)
@given(st.lists(PAGE_STATES, min_size=1, max_size=4))
def test_each_field_shows_the_text_of_the_value_it_sets(states):
    # the texts are remembered per Inputs (an equal Inputs gets the same texts back): each must
    # still be its own field's text of the value these inputs hold, batch included
    for state in states:
        try:
            inputs = parse_inputs(state)
        except InputError:
            continue
        shown = field_values(inputs)
        assert list(shown) == [field.name for field in FIELDS]
        for field in FIELDS:
            if field.target != "inputs":
                value = getattr(getattr(inputs, field.target), field.attribute)
                assert shown[field.name] == field.text(value), field.name
        assert (shown["batch"], shown["b_batch"]) == (str(inputs.setup.batch), str(inputs.compare.batch))


def _whole_answer(params: dict):
    """_answer, worked out the long way: every field parsed at once, each text and the link
    from these very inputs (nothing remembered, no batch set apart)."""
    try:
        inputs = inputs_module._parse(params)
    except InputError as e:
        return e.errors
    return (inputs, inputs_module._field_values.__wrapped__(inputs),
            inputs_module._inputs_to_params.__wrapped__(inputs))


@settings(max_examples=150, deadline=None)
@given(PAGE_STATES, st.sampled_from(["3", "64", "1,024", "0", "1.5", ""]))
def test_setting_the_batch_apart_gives_what_the_whole_parse_gives(state, batch):
    # calc parses the other fields once for every batch and sets the batch alone; the
    # inputs, their texts and their link (its order too) must be what parsing every field at
    # once makes, and each message the same
    state = {**state, "batch": batch}
    quick, whole = _answer(state), _whole_answer(state)
    assert quick == whole
    if isinstance(whole, tuple):
        assert list(quick[1]) == list(whole[1]) and list(quick[2]) == list(whole[2])
    else:
        assert list(quick) == list(whole)


def test_a_link_keeps_what_the_reader_chose_against_the_fine_tuning_defaults():
    # LoRA runs over SDPA unless the reader says otherwise: a reader's explicit attention
    # differs from that, so the link must carry it, though it is full training's default.
    lora = parse_inputs({"finetune": "lora", "attention": "explicit"})
    assert inputs_to_params(lora) == {"finetune": "lora", "attention": "explicit"}
    assert inputs_to_params(parse_inputs({"finetune": "lora"})) == {"finetune": "lora"}
