from html.parser import HTMLParser

from calc import PRESETS, TrainingSetup, activation_table, parameter_table
from calc.render import to_html, to_markdown, to_text
from calc.table import Row, Table, f


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
    parser.feed(to_html(table))
    assert "seed-scores" in parser.ids and "seed-total" in parser.ids
    assert len(parser.ids) == len(set(parser.ids)) == len(table.rows) + 1


def test_text_is_escaped_never_injected():
    evil = Table("t", "<script>alert(1)</script>", (Row("k\"x", "<img src=x onerror=alert(1)>", f(("s",)), 1, 1),))
    html = to_html(evil)
    parser = Collect()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags
    assert "&lt;img" in html


def test_markdown_and_text_show_the_same_totals():
    table = parameter_table(PRESETS["gpt2-xl"])
    assert "**1,557,611,200**" in to_markdown(table)
    assert "1,557,611,200" in to_text(table)
    assert "6.230 GB" in to_text(table)  # 1,557,611,200 × 4 bytes
