"""The one HTML table writer: stable row ids, escaped text, header and rows of one width."""

from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from calc import PRESETS, TrainingSetup, activation_table
from calc.site.html import formula_table_html, grid_html, query_link, sentence_html, unavailable_html
from calc.table import Row, Sentence, Table, f, grid


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.ids += [v for k, v in attrs if k == "id"]


def test_every_row_has_a_stable_id():
    table = activation_table(PRESETS["cs336-gpt2-xl"], TrainingSetup(accounting="seed"))
    parser = Collect()
    parser.feed(formula_table_html(table))
    assert "seed-scores" in parser.ids and "seed-total" in parser.ids
    assert len(parser.ids) == len(set(parser.ids)) == len(table.rows) + 1


def test_text_is_escaped_never_injected():
    evil = Table("t", "<script>alert(1)</script>", (Row("k\"x", "<img src=x onerror=alert(1)>", f(("s",)), 1, 1),))
    evil_grid = grid("g", "<b>", ["<i>"], [("r", ["<svg onload=alert(1)>"], {"accounting": "seed\"><x>"})])
    for html in (formula_table_html(evil), grid_html(evil_grid, "p", link=lambda params: "?" + params["accounting"]),
                 sentence_html(Sentence("k", "<script>x</script>"), "p")):
        parser = Collect()
        parser.feed(html)
        assert not {"script", "img", "svg", "b", "i", "x"} & set(parser.tags), html
    assert "&lt;img" in formula_table_html(evil)


def test_headers_are_column_headers():
    html = grid_html(grid("g", "c", ["A", "B"], [("r", ["1", "2"])]), "p")
    assert html.count('<th scope="col"') == 2


def test_a_reason_two_fields_give_is_said_once():
    html = unavailable_html("scratch", ["choose explicit", "choose explicit", "choose none"])
    assert html.count("choose explicit") == 1 and "choose explicit; choose none." in html


def test_a_formula_breaks_only_between_its_terms():
    # each term of L·s·d_ff + 2·L·s is one unbreakable span; the "+" between them may wrap
    from calc.site.html import _formula_cell
    from calc.table import f
    cell = _formula_cell(f(("L", "s", "d_ff"), (2, "L", "s")))
    assert cell.count('class="calc-term"') == 2 and "</span> + <span" in cell


@given(st.dictionaries(st.text(min_size=1), st.text(), max_size=6), st.sampled_from(["", "../zero/"]))
def test_a_link_carries_its_params_as_urlencode_writes_them_sorted_by_name(params, page):
    link = query_link(page, params)
    if not params:
        assert link == page
        return
    assert link == page + "?" + urlencode(sorted(params.items()))
    assert dict(parse_qsl(link.split("?", 1)[1], keep_blank_values=True)) == params
    assert query_link(page, params) == link  # the remembered pairs give the same link again
