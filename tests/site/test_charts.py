"""The pictures plot calc's own numbers: read them back from the SVG and compare."""

import re

from calc import PRESETS, TrainingSetup, activation_table, fixed_table, largest_batch, peak_bytes
from calc.comparisons import OPTION_SETS
from calc.inputs import parse_inputs
from calc.site.views import render_view

SEED = PRESETS["cs336-gpt2-xl"]


def bars(svg: str) -> dict:
    out: dict = {}
    for bar, part, nbytes in re.findall(r'data-bar="([^"]+)" data-part="([^"]+)" data-bytes="(\d+)"', svg):
        out.setdefault(bar, {})[part] = int(nbytes)
    return out


def test_each_stacked_bar_adds_up_to_fixed_memory_plus_activations():
    svg = render_view("chart-stack", {"batch": "2"}, "s")
    drawn = bars(svg)
    for rk, _, options in OPTION_SETS:
        setup = TrainingSetup(batch=2, **options)
        fixed = sum(r.bytes for r in fixed_table(SEED, setup).rows)
        kept = activation_table(SEED, setup).bytes_for_batch()
        assert sum(drawn[rk].values()) == fixed + kept
        assert f'data-bar="{rk}" data-peak="{peak_bytes(SEED, setup)}"' in svg


def test_the_quadratic_segment_is_the_softmax_output_and_the_mask():
    drawn = bars(render_view("chart-stack", {}, "s"))
    L, h, s = 48, 25, 1024
    assert drawn["baseline"]["quadratic"] == 4 * L * h * s * s + s * s  # fp32 P in every block, one bool mask
    assert "quadratic" not in drawn["flash"]  # flash keeps nothing of size s²: its log-sum-exp is h·s


def test_batch_lines_mark_the_largest_batch_that_fits():
    svg = render_view("chart-batch", {}, "b")
    for rk, best in re.findall(r'data-series="([^"]+)" data-largest-batch="(\d+)"', svg):
        options = dict(OPTION_SETS[[k for k, _, _ in OPTION_SETS].index(rk)][2])
        # the default GPU: an H100 80GB reports 81,559 MiB; less the 1 GiB reserve and 5 % of
        # the card (rounded down) for the allocator's cache
        card = 81_559 * 2**20
        assert int(best) == largest_batch(SEED, TrainingSetup(**options), card - 2**30 - card * 5 // 100)
    points = re.search(r'data-series="baseline" data-points="([^"]+)"', svg).group(1).split()
    for point in points[:5]:
        b, v = map(int, point.split(":"))
        assert v == peak_bytes(SEED, TrainingSetup(batch=b))


def test_context_lines_plot_explicit_and_flash_totals():
    svg = render_view("chart-context", {}, "c")
    explicit = dict(p.split(":") for p in re.search(r'data-series="explicit" data-points="([^"]+)"', svg).group(1).split())
    assert int(explicit["1024"]) == 13_439_033_348  # the autograd total of the seed model, fp32 (tests/test_autograd.py)
    flash = dict(p.split(":") for p in re.search(r'data-series="flash" data-points="([^"]+)"', svg).group(1).split())
    assert int(flash["4096"]) == activation_table(SEED.replace(context=4096), TrainingSetup(attention="flash")).bytes_for_batch()


def test_block_bars_are_one_blocks_rows():
    svg = render_view("chart-block", {}, "k")
    drawn = {k: int(v) for k, v in re.findall(r'data-row="([^"]+)" data-bytes="(\d+)"', svg)}
    assert drawn["probabilities"] == 4 * 25 * 1024 * 1024
    assert drawn["w1-output"] == 4 * 1024 * 6400


def test_every_picture_is_labelled_and_has_its_numbers_as_a_table():
    for name in ("chart-stack", "chart-batch", "chart-context", "chart-block"):
        html = render_view(name, {}, "p")
        assert 'role="img"' in html and "<title id=" in html and "<desc id=" in html
        assert "<table class=\"calc\">" in html


def test_pictures_follow_the_inputs():
    assert render_view("chart-stack", {"batch": "2"}, "s") != render_view("chart-stack", {}, "s")
    assert parse_inputs({"unit": "GiB"}).unit_bytes == 2**30
