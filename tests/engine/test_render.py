"""Tables as terminal text: the numbers a reader sees, with their units."""

from calc import PRESETS, TrainingSetup, activation_table, parameter_table
from calc.render import part_text, to_markdown, to_text
from calc.table import Sentence, grid


def test_markdown_and_text_show_the_same_totals():
    table = parameter_table(PRESETS["gpt2-xl"])
    assert "**1,557,611,200**" in to_markdown(table)
    assert "1,557,611,200" in to_text(table)
    assert "6.230 GB" in to_text(table)  # 1,557,611,200 × 4 bytes


def test_text_rows_line_up_under_their_headers():
    # the seed's accounting at B = 2: 16,262,172,672 bytes a sequence, twice that for the batch
    text = to_text(activation_table(PRESETS["cs336-gpt2-xl"], TrainingSetup(accounting="seed", batch=2)))
    lines = text.splitlines()
    header, rule, total = lines[1], lines[2], lines[-1]
    assert header.endswith("GB") and len(rule) == len(header)
    assert total.endswith(f"{2 * 16_262_172_672:,}  32.524 GB")


def test_a_grid_prints_its_caption_headers_and_cells():
    g = grid("g", "Caption", ["What", "Bytes"], [("a", ["one", "1"]), ("b", ["two", "22"])])
    assert to_text(g).splitlines() == ["Caption", "What  Bytes", "----  -----", "one       1", "two      22"]
    assert to_markdown(g).splitlines()[1] == "|:---|---:|"
    assert part_text(Sentence("k", "It fits.")) == "It fits.\n"
