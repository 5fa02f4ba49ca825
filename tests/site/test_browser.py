"""The built site in real headless Chromium: live tables, shared links, bad input,
instant navigation. Expected tables come from calc itself (the same code, in CPython)."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from calc.site.views import render_view
from conftest import SCREENS_AND_SCHEMES, bring_into_view, shot

READY = "form.calc-inputs.calc-ready"
SAME_TEXT = """([selector, html]) => {
  const probe = document.createElement("div");
  probe.innerHTML = html;
  const shown = document.querySelector(selector);
  return shown !== null && shown.textContent === probe.textContent;
}"""


@pytest.fixture
def errors(page: Page):
    """Console errors and uncaught exceptions; each test asserts there were none."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(str(e)))
    return seen


def open_live(page: Page, url: str):
    page.goto(url)
    page.wait_for_selector(READY, timeout=60_000)


def unfold(page: Page, name: str):
    """Open the folded group that holds input `name`: the panel shows the key inputs only."""
    page.locator(f"#calc-in-{name}").evaluate("el => { const group = el.closest('details'); if (group) group.open = true; }")


def expected(page: Page, key: str, state: dict) -> str:
    view = page.locator(f"#{key}")
    defaults = json.loads(page.locator("form.calc-inputs").get_attribute("data-defaults") or "{}")
    params = {**defaults, **state, **json.loads(view.get_attribute("data-params"))}
    return render_view(view.get_attribute("data-view"), params, key)


def wait_for_table(page: Page, key: str, state: dict):
    page.wait_for_function(SAME_TEXT, arg=[f"#{key} .calc-output", expected(page, key, state)], timeout=10_000)


@pytest.mark.parametrize("block", ["no WebAssembly", "runtime blocked"])
def test_static_tables_stay_when_calc_cannot_load(page: Page, site_url, block):
    if block == "no WebAssembly":
        page.add_init_script("delete window.WebAssembly")
    else:
        page.route("**/vendor/pyodide/**", lambda route: route.abort())
    page.goto(site_url)
    assert "Largest batch whose peak fits in an H100 80GB" in page.locator("#summary").text_content()
    expect(page.locator(".calc-status")).to_contain_text("Live editing is unavailable", timeout=30_000)
    expect(page.locator("#calc-in-batch")).to_be_disabled()
    assert page.locator("#summary .calc-output").text_content()  # the table stays


def test_a_missing_runtime_file_is_reported_within_seconds(page: Page, site_url):
    # Pyodide leaves its promise pending when pyodide.asm.wasm is missing; the page must
    # not wait its minute to say so, nor call the tables correct for a link they do not show.
    page.route("**/pyodide.asm.wasm", lambda route: route.fulfill(status=404, body="missing"))
    page.goto(site_url + "?batch=3")
    expect(page.locator(".calc-status")).to_contain_text("pyodide.asm.wasm (404)", timeout=5_000)
    expect(page.locator(".calc-status")).to_contain_text("not your link's inputs")
    expect(page.locator("#summary")).to_have_class("calc-view calc-live calc-stale")


FAILING_WORKER = """
postMessage({ ready: true, boot: {} });
onmessage = ({ data }) => postMessage({ id: data.id, reply: JSON.stringify({ ok: false, errors: {}, html: [],
  internal: "calc could not compute this (ZeroDivisionError); the tables show the last good values." }) });
"""


def test_a_failed_recompute_is_said_plainly_and_the_tables_marked_stale(page: Page, site_url):
    # a worker whose calc fails on every request (calc.site.browser's reply for an internal error)
    page.route("**/js/calc-worker.js", lambda route: route.fulfill(body=FAILING_WORKER, content_type="text/javascript"))
    page.goto(site_url + "?batch=2")
    expect(page.locator(".calc-status")).to_contain_text("calc could not compute this (ZeroDivisionError)", timeout=10_000)
    assert "Traceback" not in page.locator(".calc-status").text_content()
    expect(page.locator("#summary")).to_have_class("calc-view calc-live calc-stale")


def test_editing_an_input_recomputes_every_table_on_the_page(page: Page, site_url, errors):
    open_live(page, site_url + "counting-every-intermediate/")
    page.fill("#calc-in-batch", "3")
    wait_for_table(page, "seed", {"batch": "3"})
    assert f"{3 * 16_262_172_672:,}" in page.locator("#seed-total").text_content()  # the seed's bytes, three times
    page.select_option("#calc-in-dtype", "bf16")
    wait_for_table(page, "seed", {"batch": "3", "dtype": "bf16"})
    page.wait_for_url(lambda url: "batch=3" in url and "dtype=bf16" in url)  # once typing pauses
    assert not errors


def test_a_preset_fills_the_shape_and_reset_restores_defaults(page: Page, site_url, errors):
    open_live(page, site_url + "the-model/")
    page.select_option("#calc-in-preset", "llama-2-7b")
    wait_for_table(page, "parameters", {"preset": "llama-2-7b"})
    expect(page.locator("#calc-in-d_model")).to_have_value("4096")
    assert "6,738,415,616" in page.locator("#parameters-total").text_content()  # Llama 2 7B's published count
    page.click("button[data-action=reset]")
    wait_for_table(page, "parameters", {})
    expect(page.locator("#calc-in-d_model")).to_have_value("1600")
    page.wait_for_url(lambda url: "?" not in url)
    assert not errors


def test_another_preset_keeps_the_context_the_reader_typed(reader, site_url):
    open_live(reader, site_url)
    reader.fill("#calc-in-context", "4096")
    wait_for_table(reader, "summary", {"context": "4096"})
    reader.select_option("#calc-in-preset", "llama-3-8b")
    wait_for_table(reader, "summary", {"context": "4096", "preset": "llama-3-8b"})
    expect(reader.locator("#calc-in-context")).to_have_value("4096")
    unfold(reader, "d_model")
    expect(reader.locator("#calc-in-d_model")).to_have_value("4096")  # the preset's own width
    assert not reader.errors
    shot(reader, "preset-keeps-context")



def test_a_shared_link_reproduces_the_view(page: Page, site_url, errors):
    open_live(page, site_url + "what-autograd-keeps/?batch=2&attention=flash&unit=GiB#the-table")
    state = {"batch": "2", "attention": "flash", "unit": "GiB"}
    wait_for_table(page, "autograd", state)
    wait_for_table(page, "autograd-bf16", state)
    expect(page.locator("#calc-in-batch")).to_have_value("2")
    expect(page.locator("#calc-in-attention")).to_have_value("flash")
    assert not errors


def test_bad_input_is_caught_beside_the_field_and_the_table_goes_stale(reader, site_url):
    open_live(reader, site_url + "fixed-memory/")
    before = reader.locator("#fixed .calc-output").inner_html()
    unfold(reader, "heads")
    reader.fill("#calc-in-heads", "7")
    expect(reader.locator("#calc-in-heads-error")).to_have_text("heads (7) must divide d_model (1600)")
    expect(reader.locator("#calc-in-heads")).to_have_attribute("aria-invalid", "true")
    expect(reader.locator("#fixed")).to_have_class("calc-view calc-live calc-stale")
    assert reader.locator("#fixed .calc-output").inner_html() == before
    reader.locator("#calc-in-heads").scroll_into_view_if_needed()
    shot(reader, "bad-input")  # the message beside the field, the last good table marked stale
    unfold(reader, "heads")
    reader.fill("#calc-in-heads", "50")  # 1,600 / 50 = 32 features a head; 25 KV heads divide 50
    wait_for_table(reader, "fixed", {"heads": "50"})
    expect(reader.locator("#calc-in-heads-error")).to_have_text("")
    expect(reader.locator("#fixed")).to_have_class("calc-view calc-live")
    assert not reader.errors



def test_hostile_url_parameters_are_shown_as_text_never_run(page: Page, site_url, errors):
    page.on("dialog", lambda d: errors.append("dialog opened: " + d.message))
    payload = "<img src=x onerror=alert(1)>"
    page.goto(site_url + "?batch=" + payload + "&layers=-3")
    expect(page.locator("#calc-in-batch-error")).to_contain_text(payload, timeout=60_000)
    expect(page.locator("#calc-in-layers-error")).to_contain_text("layers must be a whole number")
    assert page.locator("img[src=x]").count() == 0
    expect(page.locator("#summary")).to_have_class("calc-view calc-live calc-stale")
    assert not errors


def test_keyboard_only_editing_works(page: Page, site_url, errors):
    open_live(page, site_url + "fixed-memory/")
    page.focus("#calc-in-batch")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")  # a text field (calc reads what was typed, "4,096" or "1e" alike)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowDown")  # next select: attention → flash
    wait_for_table(page, "fixed", {"batch": "2"})
    page.wait_for_url(lambda url: "batch=2" in url)
    assert not errors


def test_instant_navigation_binds_each_page_and_loads_pyodide_once(page: Page, site_url, errors):
    open_live(page, site_url)
    page.click("nav.md-nav--primary a[href$='peak-not-sum/']")
    page.wait_for_url("**/peak-not-sum/")
    page.wait_for_selector(READY, timeout=30_000)
    page.fill("#calc-in-batch", "2")
    wait_for_table(page, "moments", {"batch": "2"})
    wasm_loads = page.evaluate("performance.getEntriesByType('resource').filter(e => e.name.endsWith('pyodide.asm.wasm')).length")
    assert wasm_loads <= 1
    assert not errors


def test_a_picture_redraws_when_an_input_changes(page: Page, site_url, errors):
    open_live(page, site_url + "peak-not-sum/")
    before = page.locator("#batch-chart-svg").inner_html()
    unfold(page, "budget")
    page.fill("#calc-in-budget", "40 GiB")
    wait_for_table(page, "batch-chart", {"budget": "40 GiB"})
    assert page.locator("#batch-chart-svg").inner_html() != before
    assert page.locator("#batch-chart-svg line.calc-chart-budget").get_attribute("data-budget") == str(40 * 2**30)
    assert not errors


def test_the_terminal_command_under_the_solver_is_the_reader_s(page: Page, site_url, errors):
    # the ZeRO page's command repeats the solver for the inputs above it, whatever they are
    open_live(page, site_url + "zero/")
    page.fill("#calc-in-batch", "3")
    wait_for_table(page, "zero-command", {"batch": "3"})
    expect(page.locator("#zero-command pre.calc-command")).to_contain_text("--batch 3")
    assert not errors


def test_compare_and_reverse_calculator_work_in_the_browser(reader, site_url):
    open_live(reader, site_url + "where-2-265-gb-comes-from/")
    expect(reader.locator("#reverse-verdict")).to_contain_text("Nearest to 2.265 GB per sequence")
    reader.fill("#calc-in-claim", "13439033348 B")  # the autograd total for one sequence, fp32
    wait_for_table(reader, "reverse", {"claim": "13439033348 B"})
    expect(reader.locator("#reverse-verdict")).to_contain_text("exactly")
    bring_into_view(reader.locator("#reverse-verdict"))
    shot(reader, "reverse-calculator")
    reader.fill("#calc-in-claim", "minus two")
    expect(reader.locator("#calc-in-claim-error")).to_contain_text("not a size")
    assert not reader.errors
    open_live(reader, site_url + "making-it-smaller/")
    reader.select_option("#calc-in-b_dtype", "fp32")
    wait_for_table(reader, "compare", {"b_dtype": "fp32"})
    reader.wait_for_url(lambda url: "b_dtype=fp32" in url)
    assert not reader.errors
    bring_into_view(reader.locator("[data-table=compare]").first)
    shot(reader, "compare")


def test_per_gpu_tables_follow_the_layout(page: Page, site_url, errors):
    open_live(page, site_url + "zero/")
    expect(page.locator("#calc-in-dp")).to_have_value("64")  # the page's own starting inputs
    page.select_option("#calc-in-zero", "3")
    wait_for_table(page, "zero-per-gpu", {"zero": "3"})
    page.fill("#calc-in-pp", "5")
    expect(page.locator("#calc-in-pp-error")).to_have_text("pp (5) must divide layers (48)")
    assert not errors


def test_calc_starts_from_the_snapshot_without_the_standard_library_or_the_wheel(page: Page, site_url, errors):
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    gets: list[str] = []
    page.on("request", lambda r: r.method == "GET" and gets.append(r.url.rsplit("/", 1)[-1]))
    open_live(page, site_url + "fixed-memory/")
    assert page.evaluate("window.calcBoot.path") == "snapshot"
    assert any("/vendor/calc/" in u and u.endswith("/snapshot.bin") for u in fetched)
    assert not [u for u in fetched if u.endswith(".whl") or u.endswith("python_stdlib.zip")]
    # the worker asks for the runtime's files before Pyodide does: each is still downloaded once
    assert [gets.count(name) for name in ("pyodide.asm.wasm", "pyodide.asm.mjs", "snapshot.bin")] == [1, 1, 1]
    page.fill("#calc-in-batch", "2")
    wait_for_table(page, "fixed", {"batch": "2"})
    assert not errors


def test_the_search_index_waits_for_calc_and_search_still_answers(page: Page, site_url, errors):
    # The theme's search index is built in a worker of its own: on a page with live tables
    # it is fetched only once calc is ready, so the two do not share the CPU while calc boots.
    open_live(page, site_url + "fixed-memory/")
    page.wait_for_function("performance.getEntriesByType('resource').some(e => e.name.endsWith('search_index.json'))")
    index_at = page.evaluate("performance.getEntriesByType('resource').find(e => e.name.endsWith('search_index.json'))"
                             ".startTime")
    assert index_at >= page.evaluate("window.calcBoot.python")
    page.locator("input[name=query]").press_sequentially("optimizer")  # the theme searches on keyup, as a reader types
    page.wait_for_selector(".md-search-result__item", timeout=10_000)
    assert not errors


def test_the_fine_tuning_side_by_side_follows_once_typing_pauses(page: Page, site_url, errors):
    # it runs the solver three times: the page's other tables follow each keystroke, and it
    # follows after them, as the verdict card does
    open_live(page, site_url + "fine-tuning/")
    page.fill("#calc-in-batch", "2")
    wait_for_table(page, "finetune", {"batch": "2"})
    expect(page.locator("#finetune")).not_to_have_attribute("data-pending", "true")
    assert not errors


def test_the_search_index_waits_while_the_reader_edits(page: Page, site_url, errors):
    # A reader who edits at once would share a core with the index's build: it is fetched
    # once edits pause (1.5 s), or when the reader reaches for search.
    requested = "performance.getEntriesByType('resource').some(e => e.name.endsWith('search_index.json'))"
    open_live(page, site_url + "fixed-memory/")
    for batch in range(2, 22):  # an edit every 100 ms for two seconds
        page.fill("#calc-in-batch", str(batch))
        page.wait_for_timeout(100)
    assert not page.evaluate(requested)
    page.wait_for_function(requested, timeout=10_000)
    assert not errors


def test_a_search_result_opens_its_page_with_the_readers_inputs(page: Page, site_url, errors):
    open_live(page, site_url + "fixed-memory/?preset=llama-3-8b&batch=3")
    page.locator("input[name=query]").press_sequentially("pipeline")
    result = page.locator(".md-search-result__item a").first
    result.wait_for(timeout=10_000)
    result.click()
    page.wait_for_url(lambda url: "fixed-memory" not in url)
    assert "preset=llama-3-8b" in page.url and "batch=3" in page.url
    page.wait_for_selector(READY, timeout=60_000)
    expect(page.locator("#calc-in-batch")).to_have_value("3")
    assert not errors


@pytest.mark.parametrize("damage", ["cut short", "a byte too many", "not a snapshot"])
def test_a_damaged_snapshot_is_refused_and_calc_starts_from_the_wheel(page: Page, site_url, errors, damage):
    # the worker unpacks the snapshot as it downloads: a body that does not match its own
    # page list must not reach Pyodide
    def serve_damaged(route):
        body = route.fetch().body()
        damaged = {"cut short": body[: len(body) // 2], "a byte too many": body + b"\1",
                   "not a snapshot": b"PK" + body[2:]}[damage]
        route.fulfill(status=200, body=damaged, headers={"Content-Type": "application/octet-stream"})

    page.route("**/vendor/calc/*/snapshot.bin", serve_damaged)
    open_live(page, site_url + "fixed-memory/")
    assert page.evaluate("window.calcBoot.path") == "wheel"
    page.fill("#calc-in-batch", "2")
    wait_for_table(page, "fixed", {"batch": "2"})


def test_without_the_snapshot_calc_still_starts_from_the_wheel(page: Page, site_url, errors):
    page.route("**/vendor/calc/*/snapshot.bin", lambda route: route.abort())
    open_live(page, site_url + "fixed-memory/")
    assert page.evaluate("window.calcBoot.path") == "wheel"
    page.fill("#calc-in-batch", "2")
    wait_for_table(page, "fixed", {"batch": "2"})


def test_pages_whose_formulas_are_all_prose_load_no_katex_script(page: Page, site_url, errors):
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    open_live(page, site_url + "counting-every-intermediate/")
    assert page.locator(".arithmatex .katex").count() > 0  # typeset when the site was built
    assert not [u for u in fetched if u.endswith(".js") and "/katex/" in u]
    assert not errors


def test_formulas_stay_typeset_after_a_recompute(page: Page, site_url, errors):
    """calc writes each formula as LaTeX; a redrawn table must be typeset again, not left as source."""
    raw = "[...document.querySelectorAll('#formulas-table .arithmatex')].filter((e) => e.textContent.includes('\\\\(')).length"
    open_live(page, site_url + "reference/")
    page.select_option("#calc-in-preset", "gpt2-xl")  # GELU, biases, learned positions: other formulas
    wait_for_table(page, "glossary-table", {"preset": "gpt2-xl"})
    page.wait_for_function(f"{raw} === 0")
    assert page.locator("#formulas-table .katex").count() > 10
    assert not errors


def test_a_page_opened_without_inputs_keeps_its_built_tables(page: Page, site_url, errors):
    """The first live render equals what the build made: nothing is swapped, nothing shifts."""
    page.add_init_script("document.addEventListener('DOMContentLoaded', () => "
                         "{ document.querySelector('#seed-total').calcMarker = 'built'; })")
    open_live(page, site_url + "counting-every-intermediate/")
    page.wait_for_function("document.querySelector('.calc-status').textContent.startsWith('Live')")
    assert page.evaluate("document.querySelector('#seed-total').calcMarker") == "built"
    # calc's tables carry a class, so the theme wraps none of them in a scroll box of its own
    assert page.locator("#seed .calc-table > table.calc").count() == 1
    assert not errors


def test_a_numbers_only_recompute_changes_text_and_keeps_the_rows(page: Page, site_url, errors):
    open_live(page, site_url + "counting-every-intermediate/")
    page.evaluate("document.querySelector('#seed-total').calcMarker = 'kept'")
    page.fill("#calc-in-batch", "5")
    wait_for_table(page, "seed", {"batch": "5"})
    assert f"{5 * 16_262_172_672:,}" in page.locator("#seed-total").text_content()  # the seed's bytes, five times
    assert page.evaluate("document.querySelector('#seed-total').calcMarker") == "kept"  # the same row, new text
    unfold(page, "accounting")
    page.select_option("#calc-in-accounting", "autograd")  # the view's accounting is pinned: rows stay seed's
    unfold(page, "layers")
    page.fill("#calc-in-layers", "2")  # fewer layers: the same rows, other numbers
    wait_for_table(page, "seed", {"batch": "5", "accounting": "autograd", "layers": "2"})
    assert not errors


def test_pages_without_live_tables_load_no_pyodide(page: Page, site_url, errors):
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(site_url + "measured-against-pytorch/")
    page.wait_for_load_state("networkidle")
    assert "validation-cs336-gpt2-xl-b1-explicit-none-fp32" in page.content()
    assert not [u for u in fetched if "/vendor/pyodide/" in u or "/vendor/calc/" in u]
    assert page.locator("form.calc-inputs").count() == 0
    assert not errors


def test_a_pasted_config_json_sets_the_model(page: Page, site_url, errors):
    # Qwen2-7B's published config: 7,615,616,512 parameters (tests/engine/test_hf_config.py)
    from pathlib import Path

    config = (Path(__file__).resolve().parents[2] / "validation" / "hf_configs" / "qwen2-7b.json").read_text()
    open_live(page, site_url + "the-model/")
    page.click("details.calc-config summary")
    page.fill("#calc-in-hf_config", config)
    expect(page.locator("#parameters-total")).to_contain_text("7,615,616,512", timeout=10_000)
    expect(page.locator("#calc-in-d_model")).to_have_value("3584")
    page.wait_for_url(lambda url: "d_model=3584" in url and "hf_config" not in url)
    # it says what it read, and leaves the context and the cache as training runs them:
    # the config's 131,072 positions are the model's limit, not this run's length
    expect(page.locator("#calc-in-hf_config-note")).to_contain_text(
        "Read Qwen2ForCausalLM (qwen2): 7,615,616,512 parameters")
    expect(page.locator("#calc-in-hf_config-note")).to_contain_text("up to 131,072 tokens")
    expect(page.locator("#calc-in-context")).to_have_value("1024")
    expect(page.locator("#calc-in-max_positions")).to_have_value("131072")
    expect(page.locator("#calc-in-use_cache")).to_have_value("false")
    box = page.locator("#calc-in-hf_config").bounding_box()
    assert box["width"] > 400  # the whole panel's width at 1,280 px, not one column's
    # a second config replaces the first's fields: GPT-2 has as many key-value heads as heads
    gpt2 = (Path(__file__).resolve().parents[2] / "validation" / "hf_configs" / "gpt2.json").read_text()
    page.fill("#calc-in-hf_config", gpt2)
    expect(page.locator("#parameters-total")).to_contain_text("124,439,808", timeout=10_000)
    expect(page.locator("#calc-in-kv_heads")).to_have_value("12")
    expect(page.locator("#calc-in-hf_config-error")).to_have_text("")
    page.fill("#calc-in-hf_config", '{"model_type": "falcon"}')
    expect(page.locator("#calc-in-hf_config-error")).to_contain_text("model_type 'falcon' is not supported")
    assert not errors


def test_a_shared_link_shows_its_inputs_at_once_and_marks_its_tables_until_computed(reader, site_url):
    # calc never finishes loading here (its WebAssembly never arrives): the link's inputs
    # must still show at once, and the built tables say they are not yet the link's
    reader.route("**/pyodide.asm.wasm", lambda route: None)
    reader.goto(site_url + "?preset=llama-3-8b&batch=3")
    expect(reader.locator("#calc-in-batch")).to_have_value("3", timeout=5_000)
    expect(reader.locator("#calc-in-preset")).to_have_value("llama-3-8b")
    expect(reader.locator("#summary")).to_have_attribute("data-stale", "link")
    expect(reader.locator(".calc-status")).to_contain_text("until calc has computed them for your link")
    note = reader.locator("#summary .calc-view-note").evaluate("el => getComputedStyle(el, '::after').content")
    assert "Computing for your link" in note
    shot(reader, "first-paint-from-a-link")



def test_the_readers_inputs_travel_with_links_to_the_other_pages(reader, site_url):
    open_live(reader, site_url + "?preset=llama-3-8b&batch=2")
    link = reader.locator(".md-footer a.md-footer__link--next")
    expect(link).to_have_attribute("href", re.compile(r"[?&]preset=llama-3-8b"))
    expect(link).to_have_attribute("href", re.compile(r"[?&]batch=2"))
    reader.locator("#calc-in-batch").fill("5")
    expect(link).to_have_attribute("href", re.compile(r"[?&]batch=5"), timeout=10_000)
    link.click()
    reader.wait_for_selector(READY, timeout=60_000)
    expect(reader.locator("#calc-in-preset")).to_have_value("llama-3-8b")
    expect(reader.locator("#calc-in-batch")).to_have_value("5")
    assert not reader.errors
    shot(reader, "inputs-travel")



WALKED = {"preset": "llama-3-8b", "context": "2048", "batch": "2", "attention": "flash", "dtype": "fp32",
          "checkpoint": "block", "dp": "4"}
"""The reader's inputs on the walk through every page: dtype fp32 is calc's default but not
the start of ZeRO's, tensor parallelism's, the pipelines' or fine-tuning's pages; flash is
the pipelines' start but not calc's default; dp 4 is read on the "Beyond one GPU" pages
only, and must pass the one-GPU pages on the way there."""


def shown_inputs(page: Page) -> dict:
    """The walked inputs as the panel shows them, for those it shows."""
    return {name: page.locator(f"#calc-in-{name}").input_value() for name in WALKED
            if page.locator(f"#calc-in-{name}").count()}


def assert_page_shows_the_walk(page: Page):
    shown = shown_inputs(page)
    assert shown == {name: WALKED[name] for name in shown}, page.url
    query = dict(re.findall(r"[?&]([^=&]+)=([^&#]*)", page.url))
    assert {name: query.get(name) for name in WALKED} == WALKED, page.url  # kept, shown or not
    state = {name: WALKED[name] for name in shown}
    for view in page.locator(".calc-view.calc-live").all():  # the first whose text has no typeset formula
        key = view.get_attribute("data-key")
        if "arithmatex" not in expected(page, key, state):
            wait_for_table(page, key, state)
            break


def test_next_and_previous_carry_the_readers_inputs_through_every_page_and_each_reload_reproduces_it(page, site_url,
                                                                                                      errors):
    open_live(page, site_url + "?" + "&".join(f"{k}={v}" for k, v in WALKED.items()))
    visited = []
    while True:
        page.wait_for_load_state()
        if page.locator("form.calc-inputs").count():
            page.wait_for_selector(READY, timeout=60_000)
        assert_page_shows_the_walk(page)
        url = page.url
        page.reload()
        if page.locator("form.calc-inputs").count():
            page.wait_for_selector(READY, timeout=60_000)
        assert page.url == url
        assert_page_shows_the_walk(page)
        visited.append(page.url.split("?")[0])
        following = page.locator(".md-footer a.md-footer__link--next")
        if not following.count():
            break
        following.click()
        page.wait_for_url(lambda u: u.split("?")[0] != visited[-1])
    assert len(visited) == 16
    for _ in visited[1:]:  # and back, by Previous, to the first page
        page.locator(".md-footer a.md-footer__link--prev").click()
        page.wait_for_url(lambda u: u.split("?")[0] != visited[-1])
        visited.pop()
        if page.locator("form.calc-inputs").count():
            page.wait_for_selector(READY, timeout=60_000)
        assert page.url.split("?")[0] == visited[-1]
        assert_page_shows_the_walk(page)
    assert not errors


def test_back_and_forward_between_edits_follow_the_address_bar(page, site_url, errors):
    # The pipelines page starts from flash attention; explicit is calc's own default, which
    # calc's short form leaves out: the address bar must still say it. Back or Forward may
    # also have the theme swap the page in anew (an entry its scroll tracking rewrote): each
    # check waits for the page's panel to be ready again.
    def settled(url_is):
        page.wait_for_url(url_is)
        page.wait_for_selector(READY, timeout=60_000)

    open_live(page, site_url + "pipelines/")
    page.fill("#calc-in-batch", "3")
    page.wait_for_url(lambda url: "batch=3" in url)
    page.select_option("#calc-in-attention", "explicit")
    page.wait_for_url(lambda url: "attention=explicit" in url)
    wait_for_table(page, "pp-per-gpu", {"batch": "3", "attention": "explicit"})
    edited = page.url
    page.go_back()
    settled(lambda url: "attention" not in url and "batch=3" in url)
    expect(page.locator("#calc-in-attention")).to_have_value("flash")
    expect(page.locator("#calc-in-batch")).to_have_value("3")
    wait_for_table(page, "pp-per-gpu", {"batch": "3"})
    page.go_back()
    settled(lambda url: "batch" not in url)
    expect(page.locator("#calc-in-batch")).not_to_have_value("3")
    wait_for_table(page, "pp-per-gpu", {})
    page.go_forward()
    page.go_forward()
    settled(edited)
    expect(page.locator("#calc-in-attention")).to_have_value("explicit")
    expect(page.locator("#calc-in-batch")).to_have_value("3")
    wait_for_table(page, "pp-per-gpu", {"batch": "3", "attention": "explicit"})
    page.reload()
    page.wait_for_selector(READY, timeout=60_000)
    expect(page.locator("#calc-in-attention")).to_have_value("explicit")
    wait_for_table(page, "pp-per-gpu", {"batch": "3", "attention": "explicit"})
    assert not errors


def test_a_page_whose_start_does_not_apply_to_the_readers_model_falls_back_and_says_so(page: Page, site_url, errors):
    # The ZeRO page starts from bf16 weights with an fp32 master; Llama-3-8B's preset runs
    # Hugging Face's code, for which calc refuses that precision: the page shows fp32,
    # says why, marks nothing stale, and its address names only what the reader chose.
    open_live(page, site_url + "zero/?preset=llama-3-8b")
    expect(page.locator(".calc-status")).to_contain_text("This page starts from precision bf16-master", timeout=10_000)
    expect(page.locator("#calc-in-dtype")).to_have_value("fp32")
    assert page.locator(".calc-view.calc-stale").count() == 0
    wait_for_table(page, "zero-per-gpu", {"preset": "llama-3-8b", "dtype": "fp32"})
    page.wait_for_timeout(500)  # the address bar follows once calc has answered
    assert "dtype" not in page.url and "preset=llama-3-8b" in page.url
    page.select_option("#calc-in-preset", "cs336-gpt2-xl")  # a preset the start does apply to: it comes back
    expect(page.locator("#calc-in-dtype")).to_have_value("bf16-master", timeout=10_000)
    expect(page.locator(".calc-status")).not_to_contain_text("This page starts from")
    assert not errors


def test_the_verdict_is_in_view_from_the_first_paint_to_the_page_s_end_and_follows_an_edit(reader, site_url):
    open_live(reader, site_url + "fixed-memory/?preset=llama-3-8b")
    card = reader.locator(".calc-verdict")
    height = reader.viewport_size["height"]
    box = card.bounding_box()
    assert box["y"] + box["height"] <= height  # above the fold
    wait_for_table(reader, "verdict", {"preset": "llama-3-8b"})
    reader.fill("#calc-in-batch", "3")  # scrolls down to the panel
    wait_for_table(reader, "verdict", {"preset": "llama-3-8b", "batch": "3"})
    expect(reader.locator(".calc-verdict-why")).to_have_attribute("href", re.compile(r"zero/\?.*batch=3.*#zero-solver"))
    reader.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    reader.wait_for_timeout(300)
    header = reader.locator(".md-header").bounding_box()
    box = card.bounding_box()
    assert header["y"] + header["height"] <= box["y"] + 1 and box["y"] + box["height"] <= height  # still in view
    assert box["height"] <= (0.25 if reader.viewport_size["width"] < 600 else 0.15) * height  # and compact
    assert not reader.errors
    shot(reader, "verdict-scrolled")


@pytest.mark.parametrize("screen", SCREENS_AND_SCHEMES, ids=lambda p: f"{p[0]}px-{p[2]}")
def test_without_javascript_a_line_says_a_links_inputs_cannot_be_applied(browser, site_url, screen):
    width, height, scheme = screen
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": height},
                                  color_scheme=scheme)
    page = context.new_page()
    page.screen_name = f"{width}px-{scheme}"
    page.goto(site_url + "?batch=3")
    expect(page.locator(".calc-noscript")).to_be_visible()
    expect(page.locator(".calc-noscript")).to_contain_text("inputs in a link cannot be applied")
    expect(page.locator(".calc-status")).to_be_hidden()  # no promise that live editing starts
    assert page.locator('.calc-actions [data-action="copy"]').evaluate("b => getComputedStyle(b).opacity") == "0.5"
    shot(page, "without-javascript")
    context.close()



def test_the_panel_shows_the_key_inputs_and_folds_the_rest_opening_a_group_with_an_error(reader, site_url):
    open_live(reader, site_url)
    for name in ("preset", "context", "batch", "dtype", "attention", "checkpoint", "gpu"):
        expect(reader.locator(f"#calc-in-{name}")).to_be_visible()
    for name in ("layers", "d_model", "accounting", "reserve"):
        expect(reader.locator(f"#calc-in-{name}")).to_be_hidden()
    reader.goto(site_url + "?layers=-3")
    reader.wait_for_selector(READY, timeout=60_000)
    expect(reader.locator("#calc-in-layers")).to_be_visible()  # its group opened to show the error
    expect(reader.locator("#calc-in-layers-error")).to_contain_text("layers must be a whole number")
    shot(reader, "short-panel")



def test_back_undoes_an_edit(reader, site_url):
    open_live(reader, site_url)
    reader.fill("#calc-in-batch", "3")
    reader.wait_for_url(lambda url: "batch=3" in url)
    reader.fill("#calc-in-batch", "5")
    reader.wait_for_url(lambda url: "batch=5" in url)
    reader.go_back()
    reader.wait_for_url(lambda url: "batch=3" in url)
    reader.wait_for_selector(READY, timeout=60_000)
    expect(reader.locator("#calc-in-batch")).to_have_value("3")
    wait_for_table(reader, "summary", {"batch": "3"})
    assert not reader.errors
    shot(reader, "back-undoes")



def test_a_table_wider_than_a_phone_scrolls_and_shows_a_cue(browser, site_url):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(site_url + "what-autograd-keeps/")
    wrapper = page.locator(".calc-table").first
    assert wrapper.evaluate("el => el.scrollWidth > el.clientWidth")  # more columns than fit
    assert "radial-gradient" in wrapper.evaluate("el => getComputedStyle(el).backgroundImage")
    page.close()
