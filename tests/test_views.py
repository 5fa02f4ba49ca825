import json

import pytest

from calc.browser import handle
from calc.inputs import InputError
from calc.views import VIEWS, render_value, render_view


@pytest.mark.parametrize("name", sorted(set(VIEWS) - {"validation"}))
def test_every_view_renders_for_every_preset_family(name):
    for preset in ("cs336-gpt2-xl", "gpt2-small", "llama-3-8b"):
        html = render_view(name, {"preset": preset}, key="k")
        assert html.startswith("<") and "None" not in html


def test_views_follow_their_inputs():
    one = render_view("activations", {"accounting": "seed"}, "a")
    two = render_view("activations", {"accounting": "seed", "batch": "2"}, "a")
    assert "16,262,172,672" in one and f"{2 * 16_262_172_672:,}" in two


def test_bad_inputs_raise_instead_of_rendering():
    with pytest.raises(InputError):
        render_view("summary", {"batch": "-1"})


def test_values_are_labelled():
    assert render_value("bytes.activations", {"accounting": "seed"}) == "16.262 GB"
    assert render_value("exact.activations", {"accounting": "seed"}) == "16,262,172,672"
    assert render_value("parameters", {"preset": "gpt2-xl"}) == "1,557,611,200"


def test_browser_entry_point_renders_views_and_reports_field_errors():
    reply = json.loads(handle(json.dumps({"state": {"batch": "2", "junk": "x"},
                                          "views": [{"kind": "view", "name": "activations", "key": "a", "params": {"accounting": "seed"}}]})))
    assert reply["ok"] and reply["canonical"] == {"batch": "2"} and reply["resolved"]["batch"] == "2"
    assert f"{2 * 16_262_172_672:,}" in reply["html"][0]
    bad = json.loads(handle(json.dumps({"state": {"batch": "two", "d_ff": "0"}, "views": []})))
    assert not bad["ok"] and set(bad["errors"]) == {"batch", "d_ff"}
