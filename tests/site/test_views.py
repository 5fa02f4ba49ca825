"""Every view renders well-formed HTML whose tables have one cell per header, for every
kind of model; views follow their inputs; bad inputs are errors, not pages."""

import re
from html.parser import HTMLParser

import pytest

from calc.catalog import STATIC_VIEWS, VIEWS
from calc.errors import InputError
from calc.site.views import render_value, render_view


class Tables(HTMLParser):
    """Each table's header width and each row's width; every id; unclosed tags."""

    VOID = {"br", "input", "rect", "line", "circle", "polyline"}

    def __init__(self):
        super().__init__()
        self.tables, self.ids, self.open = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag not in self.VOID:
            self.open.append(tag)
        if tag == "table":
            self.tables.append({"header": 0, "rows": []})
        elif tag == "tr" and "thead" not in self.open:
            self.tables[-1]["rows"].append(0)
        elif tag in ("th", "td"):
            table = self.tables[-1]
            if "thead" in self.open:
                table["header"] += 1
            else:
                table["rows"][-1] += 1

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


@pytest.mark.parametrize("name", sorted(set(VIEWS) - STATIC_VIEWS))
@pytest.mark.parametrize("params", [{}, {"preset": "gpt2-small", "dtype": "bf16"},
                                    {"preset": "llama-3-8b", "context": "4096", "batch": "3"},
                                    {"checkpoint": "selective", "attention": "flash"},
                                    {"implementation": "scratch", "softmax": "amax", "dtype": "bf16"},
                                    {"preset": "mistral-7b", "context": "4096", "attention": "flash"},
                                    {"preset": "gpt2-small", "implementation": "reference"},
                                    {"dp": "4", "zero": "1", "tp": "5", "sp": "true", "context": "1000", "pp": "2", "microbatches": "4"},
                                    {"dp": "4", "zero": "3", "cp": "2", "attention": "flash", "solve_sequences": "16"},
                                    {"pp": "4", "virtual_stages": "2", "microbatches": "8", "keep_logits": "true"},
                                    {"dtype": "bf16-master", "device": "cpu", "optimizer_impl": "for-loop"}])
def test_every_view_renders_tables_whose_rows_match_their_headers(name, params):
    html = render_view(name, params, key="k")
    parsed = Tables()
    parsed.feed(html)
    parsed.close()
    assert not parsed.open, f"unclosed: {parsed.open}"
    assert len(parsed.ids) == len(set(parsed.ids)), "ids are unique"
    assert "None" not in html and "nan" not in html.lower().replace("nano", "")
    for table in parsed.tables:
        assert table["rows"], "a table has rows"
        assert all(width == table["header"] for width in table["rows"]), table


def test_views_follow_their_inputs():
    one = render_view("activations", {"accounting": "seed"}, "a")
    two = render_view("activations", {"accounting": "seed", "batch": "2"}, "a")
    assert "16,262,172,672" in one and f"{2 * 16_262_172_672:,}" in two


def test_bad_inputs_raise_instead_of_rendering():
    with pytest.raises(InputError):
        render_view("summary", {"batch": "-1"})
    with pytest.raises(InputError):
        render_view("chart-stack", {"bars": "<script>"})
    with pytest.raises(KeyError):
        render_view("no-such-view", {})


def test_values_are_labelled():
    assert render_value("bytes.activations", {"accounting": "seed"}) == "16.262 GB"
    assert render_value("exact.activations", {"accounting": "seed"}) == "16,262,172,672"
    assert render_value("parameters", {"preset": "gpt2-xl"}) == "1,557,611,200"
    # the solver's bounds, as calc/layout/solver.py documents them: one node of 8 GPUs, 128 stages
    assert [render_value(f"solver.max_{n}", {}) for n in ("tp", "pp", "cp")] == ["8", "128", "8"]


def test_a_walked_moment_names_the_op_it_peaks_at():
    # At the seed's sizes (one sequence of 1,024 tokens, 25 heads) explicit attention's
    # softmax backward holds the gradients of P and of the scores together, 2 · 25 · 1,024²
    # fp32 values (209.7 MB), more than the feed-forward layers' backward ever adds (their
    # three weight gradients are 3 · 1,600 · 6,400 fp32 values, 122.9 MB, and by W1's the
    # 1,024 · 6,400 saved outputs are being freed); with flash attention no quadratic tensor
    # exists and the feed-forward's backward is the highest.
    assert render_value("at.last-block-backward", {"attention": "explicit"}) == "softmax's backward"
    assert render_value("at.last-block-backward", {"attention": "flash", "dtype": "bf16"}) == \
        "the backward of SwiGLU's product"
    assert render_value("at.head-backward", {"preset": "llama-3-8b"}) == "—"  # Hugging Face code: not walked
    with pytest.raises(KeyError):
        render_value("at.no-such-moment", {})


def test_generated_links_carry_every_input_the_reader_set():
    html = render_view("reverse", {"preset": "llama-3-8b", "context": "2048", "batch": "3"}, "r")
    links = [part.split('"')[0] for part in html.split('href="')[1:]]
    # every link keeps the reader's model and batch, and names the context its row was found at
    assert links and all("preset=llama-3-8b" in link and "batch=3" in link and "context=" in link for link in links)
    solver = render_view("solver", {"preset": "llama-3-8b", "context": "2048", "batch": "8", "dtype": "bf16"}, "s")
    assert "preset=llama-3-8b" in solver and "context=2048" in solver and "dtype=bf16" in solver


def test_a_linked_row_is_named_by_its_own_label_not_open():
    # the reverse calculator's rows link to the setups they describe, named by them: in a
    # screen reader's list of links, two links with one name go to one place
    html = render_view("reverse", {}, "rev")
    links = re.findall(r"<a href=\"([^\"]+)\">([^<]+)</a>", html)
    assert len(links) > 1 and "open" not in {name for _, name in links}
    assert len({name for _, name in links}) == len({(href, name) for href, name in links}) > 1


def test_choosing_a_card_drops_a_budget_typed_for_another():
    from calc.site.form import inputs_panel
    gpu = re.search(r'<select id="calc-in-gpu"[^>]*>', inputs_panel({})).group(0)
    assert 'data-clears="budget"' in gpu
