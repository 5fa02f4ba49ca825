"""Reading the built site as its readers do: on a 1440-px desktop and a 390-px phone, in the
light and the dark scheme (the `reader` fixture, tests/conftest.py). Each test leaves a
screenshot of what it checked in tests/screens/ (not committed: the run produces them)."""

from __future__ import annotations

import pytest

from conftest import bring_into_view, shot


def box_of(locator) -> dict:
    return locator.evaluate("el => { const r = el.getBoundingClientRect(); "
                            "return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; }")


@pytest.mark.parametrize("path", ["", "what-autograd-keeps/", "peak-not-sum/", "zero/"])
def test_each_tables_figure_in_the_readers_unit_is_in_view_without_scrolling_sideways(reader, site_url, path):
    reader.goto(site_url + path)
    width = reader.viewport_size["width"]
    tables = reader.locator(".calc-table:has(thead th:nth-child(2):text-is('GB'))")
    assert tables.count() > 0
    for n in range(tables.count()):
        header = tables.nth(n).locator("thead th").nth(1)
        assert box_of(header)["right"] <= width, f"table {n}: the GB column is cut off"
    tables.first.scroll_into_view_if_needed()
    shot(reader, f"unit-second-{path.strip('/') or 'home'}")


def test_a_link_to_a_row_shows_the_row_under_its_tables_header(reader, site_url):
    reader.goto(site_url + "what-autograd-keeps/#autograd-ffn-input")
    row = reader.locator("#autograd-ffn-input")
    phone = reader.viewport_size["width"] < 600  # there the page scrolls, not the table's box
    reader.wait_for_function("""(phone) => {
      const row = document.getElementById('autograd-ffn-input'), head = row.closest('table').tHead.rows[0].cells[0];
      const top = document.querySelector('.calc-verdict').getBoundingClientRect().bottom;
      const first = phone ? row : head;
      return first.getBoundingClientRect().top >= top - 1 && row.getBoundingClientRect().bottom <= innerHeight;
    }""", arg=phone, timeout=5_000)
    wrapper = row.locator("xpath=ancestor::div[contains(@class, 'calc-table')]")
    header = wrapper.locator("thead th").first  # the cells stick, not the row group
    card = box_of(reader.locator(".calc-verdict"))  # in view under the site's header
    assert box_of(reader.locator(".md-header"))["bottom"] <= card["top"] + 1
    if not phone:
        assert card["bottom"] <= box_of(header)["top"] + 1  # the table's header is under neither
    assert box_of(header)["bottom"] <= box_of(row)["top"] + 1  # the row is below its header, not under it
    assert card["bottom"] <= box_of(row)["top"] + 1 and box_of(row)["bottom"] <= reader.viewport_size["height"]
    assert wrapper.evaluate("el => el.scrollLeft") == 0  # never scrolled sideways
    shot(reader, "deep-link")


def test_a_long_tables_header_stays_in_view_as_its_rows_scroll(reader, site_url):
    reader.set_viewport_size({"width": reader.viewport_size["width"], "height": 500})  # shorter than the table
    reader.goto(site_url + "what-autograd-keeps/")
    wrapper = reader.locator(".calc-table").first
    wrapper.scroll_into_view_if_needed()
    if reader.viewport_size["width"] < 600:  # a phone: the page scrolls down to the Total row, never the box
        assert wrapper.evaluate("el => el.scrollHeight <= el.clientHeight")
        total = wrapper.locator("tfoot tr, tbody tr").last
        total.scroll_into_view_if_needed()
        assert box_of(total)["bottom"] <= 500
        # sideways, the first column (the key) stays put while the rest scrolls under it
        key = wrapper.locator("tbody td").first
        left = box_of(key)["left"]
        wrapper.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
        assert wrapper.evaluate("el => el.scrollLeft") > 0 and abs(box_of(key)["left"] - left) <= 1
        shot(reader, "sticky-header")
        return
    assert wrapper.evaluate("el => el.scrollHeight > el.clientHeight")  # it scrolls in its own box
    wrapper.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    header, box = box_of(wrapper.locator("thead th").first), box_of(wrapper)
    assert abs(header["top"] - box["top"]) <= 1  # stuck to the top of its box
    shot(reader, "sticky-header")


CHARTS = [("", "home-stack"), ("peak-not-sum/", "batch-chart"), ("the-quadratic-term/", "context-chart"),
          ("what-autograd-keeps/", "block-bars"), ("zero/", "zero-chart"), ("fine-tuning/", "finetune-stack")]


@pytest.mark.parametrize("path, key", CHARTS, ids=[key for _, key in CHARTS])
def test_each_picture_is_drawn_for_the_screen_with_legible_text(reader, site_url, path, key):
    reader.goto(site_url + path)
    phone = reader.viewport_size["width"] < 600
    shown, hidden = (f"#{key}-narrow-svg", f"#{key}-svg") if phone else (f"#{key}-svg", f"#{key}-narrow-svg")
    assert reader.locator(shown).is_visible() and not reader.locator(hidden).is_visible()
    svg = reader.locator(shown)
    svg.scroll_into_view_if_needed()
    # the smallest text (axis and legend, 10 SVG units) as the reader sees it, in CSS pixels
    smallest = svg.evaluate("el => el.getBoundingClientRect().width / el.viewBox.baseVal.width * 10")
    assert smallest >= 9.5, f"{smallest:.1f}-px labels"
    assert svg.evaluate("el => el.getBoundingClientRect().right") <= reader.viewport_size["width"]
    # every label inside the picture (the GPU's, far left when the card is small beside the bars, too)
    outside = svg.evaluate("""el => [...el.querySelectorAll('text')].filter(t => {
      const box = t.getBBox(); return box.x < -0.5 || box.x + box.width > el.viewBox.baseVal.width + 0.5;
    }).map(t => t.textContent)""")
    assert outside == []
    # the GPU's dashed line passes under the labels, which mask it
    under = svg.evaluate("""el => { const line = el.querySelector('.calc-chart-budget');
      return !line || [...el.querySelectorAll('.calc-chart-label')].every(t =>
        line.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING); }""")
    assert under
    shot(reader, f"chart-{key}")


@pytest.mark.parametrize("path, key", [c for c in CHARTS if c[1] in ("batch-chart", "context-chart")],
                         ids=["batch-chart", "context-chart"])
def test_lines_differ_by_more_than_colour(reader, site_url, path, key):
    reader.goto(site_url + path)
    styles = reader.evaluate(f"""() => [...document.querySelectorAll('#{key}-svg polyline')].map(el => {{
        const cs = getComputedStyle(el); return [cs.strokeDasharray, cs.strokeWidth].join(' / '); }})""")
    assert len(styles) >= 3 and len(set(styles)) == len(styles), styles  # each line its own dash and width
    shapes = reader.evaluate(f"""() => [0, 1, 2, 3].map(n => {{
        const m = document.querySelector('#{key}-svg .calc-marker.calc-series-' + n); return m && m.dataset.shape; }})""")
    present = [s for s in shapes if s]
    assert len(set(present)) == len(present)  # each line its own marker shape


def test_the_gpu_line_is_not_the_colour_of_any_setups_line(reader, site_url):
    reader.goto(site_url + "peak-not-sum/")
    budget = reader.evaluate("getComputedStyle(document.querySelector('#batch-chart-svg .calc-chart-budget')).stroke")
    lines = reader.evaluate("[...document.querySelectorAll('#batch-chart-svg polyline')]"
                            ".map(el => getComputedStyle(el).stroke)")
    assert budget not in lines


def test_the_bars_have_a_value_axis_and_every_drawn_part_in_the_legend(reader, site_url):
    reader.goto(site_url)
    svg = "#home-stack-narrow-svg" if reader.viewport_size["width"] < 600 else "#home-stack-svg"
    ticks = reader.locator(f"{svg} text.calc-chart-axis").all_text_contents()
    assert "0" in ticks and sum(t.replace(".", "").isdigit() for t in ticks) >= 3 and "Memory (GB)" in ticks
    drawn = set(reader.evaluate(f"[...document.querySelectorAll('{svg} rect[data-part]')].map(el => el.dataset.part)"))
    legend = set(reader.evaluate(f"[...document.querySelectorAll('{svg} rect[class^=calc-part]:not([data-part])')]"
                                 ".map(el => el.getAttribute('class').replace('calc-part-', ''))"))
    assert drawn == legend


def test_the_key_inputs_take_at_most_half_a_phones_screen(reader, site_url):
    reader.goto(site_url)
    first, last = (box_of(reader.locator(f"#calc-in-{name}")) for name in ("preset", "gpu"))
    rows = len({round(box_of(reader.locator(f"#calc-in-{name}"))["top"]) for name in
                ("preset", "context", "batch", "dtype", "attention", "checkpoint", "gpu")})
    assert last["bottom"] - first["top"] <= reader.viewport_size["height"] / 2, f"{rows} rows"
    reader.locator("form.calc-inputs").scroll_into_view_if_needed()
    shot(reader, "key-inputs")


@pytest.mark.parametrize("path, screens", [("", 1), ("zero/", 1.6), ("pipelines/", 1.6), ("tensor-parallelism/", 1.6),
                                            ("fine-tuning/", 1.6)])
def test_on_a_phone_the_inputs_panel_is_short(browser, site_url, path, screens):
    # The busiest panels (ZeRO's and the pipelines': the key inputs, the layout's ten, seven
    # folded groups) were 1,536 px tall at 390 px, almost two screens, and the home page's
    # 868: the solver's question is folded and a folded group takes one line
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(site_url + path)
    height = page.evaluate("document.querySelector('form.calc-inputs').getBoundingClientRect().height")
    page.close()
    assert height <= screens * 844, f"{height:.0f} px"


@pytest.mark.parametrize("path", ["", "the-model/", "fixed-memory/", "counting-every-intermediate/",
                                  "what-autograd-keeps/", "the-quadratic-term/", "the-output-layer/", "peak-not-sum/",
                                  "making-it-smaller/", "where-2-265-gb-comes-from/", "measured-against-pytorch/",
                                  "zero/", "tensor-parallelism/", "pipelines/", "reference/"])
def test_on_a_desktop_every_calc_table_fits_its_column(browser, site_url, path):
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.goto(site_url + path)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # the pictures' numbers too
    wider = page.evaluate("""[...document.querySelectorAll('.calc-table')].filter(box => box.offsetParent)
      .map(box => [box.dataset.table, box.scrollWidth - box.clientWidth]).filter(([, over]) => over > 0)""")
    page.close()
    assert wider == []


@pytest.mark.parametrize("path", ["", "zero/"])
def test_every_choice_reads_in_full_in_its_closed_field(reader, site_url, path):
    # A closed <select> shows the chosen option's text cut at the field's edge: every
    # option of every field must fit, as the field's own font draws it.
    reader.goto(site_url + path)
    cut = reader.evaluate("""() => {
      const pen = document.createElement('canvas').getContext('2d');
      return [...document.querySelectorAll('form.calc-inputs select')].flatMap(field => {
        const style = getComputedStyle(field);
        pen.font = style.font;
        const room = field.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
        return [...field.options].filter(o => pen.measureText(o.text).width > room).map(o => `${field.name}: ${o.text}`);
      });
    }""")
    assert cut == []


def test_the_reverse_calculators_nearness_and_figure_are_in_view_without_scrolling_sideways(reader, site_url):
    reader.goto(site_url + "where-2-265-gb-comes-from/")
    headers = reader.locator("[data-table=reverse] thead th")
    assert headers.nth(1).text_content() == "Off by" and headers.nth(2).text_content() == "Predicted (GB)"
    for n in (1, 2):
        assert box_of(headers.nth(n))["right"] <= reader.viewport_size["width"]
    bring_into_view(reader.locator("#reverse-verdict"))
    shot(reader, "reverse-table")
