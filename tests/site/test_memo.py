"""calc remembers recent parses and renders for the browser: the answers must be exactly
those computed afresh, errors must still be raised, and the warm-up must leave no memory."""

from __future__ import annotations

import gc
import html

import pytest

from calc.errors import FieldError
from calc.fit import _largest_batch, largest_batch
from calc.fixed import _fixed_table, fixed_table
from calc.inputs import InputError, _parse, _parse_remembered, parse_inputs
from calc.peak import moment_bytes, moments_table
from calc.site.browser import WARM_UP, warm_up
from calc.site.escape import escape
from calc.catalog import SAME_AT_EVERY_BATCH
from calc.site.views import _render, _render_remembered, render_view


def test_a_remembered_render_equals_a_fresh_one():
    params = {"batch": "3", "attention": "flash"}
    first = render_view("activations", params, "a")
    assert render_view("activations", params, "a") == first == _render("activations", params, "a")
    assert render_view("activations", {"batch": "4", "attention": "flash"}, "a") != first


def test_a_bad_input_raises_every_time_it_is_asked():
    for _ in range(2):
        with pytest.raises(InputError) as caught:
            parse_inputs({"heads": "7"})
        assert "heads" in caught.value.errors


def test_parsing_is_remembered_and_unchanged():
    params = {"batch": "2", "dtype": "bf16"}
    assert parse_inputs(params) == _parse(params)
    unbatched = {"dtype": "bf16", "unit": "GiB"}
    assert parse_inputs(unbatched) is parse_inputs(dict(reversed(unbatched.items())))  # one parse for both orders
    # and one parse of the other fields for every batch: the batch is set alone
    parses = _parse_remembered.cache_info().misses
    for batch in ("2", "3", "1,024"):
        assert parse_inputs({"dtype": "bf16", "batch": batch}).setup.batch == int(batch.replace(",", ""))
    assert _parse_remembered.cache_info().misses == parses  # {"dtype": "bf16"} was parsed at the top


def test_the_warm_up_renders_then_forgets():
    steps = 0
    while warm_up(steps):
        steps += 1
    assert steps + 1 == len(WARM_UP)
    assert _render_remembered.cache_info().currsize == 0
    assert _parse_remembered.cache_info().currsize == 0
    # and freezes what exists, so the cyclic collector never rescans calc's modules during
    # an edit (bench/browser.py: recompute p95 from about 24 ms to 10-12 ms)
    assert gc.get_freeze_count() > 0
    gc.unfreeze()


@pytest.mark.parametrize("text", ["16,262,172,672", "15.145 GiB", "a<b", "x & y", 'say "hi"', "it's", "<script>", ""])
def test_escape_is_html_escape(text):
    assert escape(text) == html.escape(text)


STATES = [{}, {"preset": "llama-3-8b", "dtype": "bf16", "attention": "flash", "checkpoint": "block"},
          {"preset": "gpt2-small", "implementation": "hf"}, {"accounting": "megatron", "checkpoint": "selective"},
          {"preset": "llama-3-8b", "finetune": "lora", "lora_rank": "8"}, {"dp": "4", "zero": "3"},
          {"preset": "llama-3-8b", "tp": "2", "sp": "true", "pp": "4", "microbatches": "8"}]


def _rendered(name: str, params: dict) -> str:
    """The view's HTML, or the message of the field that refuses it."""
    try:
        return _render(name, params, name)
    except FieldError as e:
        return f"{e.field}: {e.message}"


@pytest.mark.parametrize("name", sorted(SAME_AT_EVERY_BATCH))
def test_a_view_remembered_without_the_batch_is_the_same_at_every_batch(name):
    for state in STATES:
        one, seven = (_rendered(name, {**state, "batch": batch}) for batch in ("1", "7"))
        assert one == seven, state
    assert render_view(name, {"batch": "2"}, name) is render_view(name, {"batch": "9"}, name)  # one render for both


def test_a_view_that_reads_the_batch_is_remembered_with_it():
    assert render_view("activations", {"batch": "2"}) != render_view("activations", {"batch": "9"})


@pytest.mark.parametrize("state", STATES + [{"finetune": "qlora", "preset": "llama-3-8b"},
                                            {"optimizer": "sgd", "dtype": "bf16-master"}])
def test_what_is_made_once_for_every_batch_is_what_each_batch_makes(state):
    # the fixed memory and the largest batch that fits are remembered without the setup's
    # batch: at each batch they must be what that batch's own setup gives, worked out afresh
    inputs = parse_inputs(state)
    for batch in (1, 3, 64):
        setup = inputs.setup.replace(batch=batch)
        assert fixed_table(inputs.shape, setup) == _fixed_table.__wrapped__(inputs.shape, setup)
        for budget in (10**9, inputs.budget, 10**12):
            assert largest_batch(inputs.shape, setup, budget) == _largest_batch.__wrapped__(inputs.shape, setup, budget)
        # and the allocator's view adds its roundings to the moments' own figures
        autograd = setup.replace(accounting="autograd")
        assert moment_bytes(inputs.shape, autograd) == tuple(r.count for r in moments_table(inputs.shape, autograd).rows)
