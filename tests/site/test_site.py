"""The built site: every page, every table equal to calc's, links and citable ids intact."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

from calc.catalog import RESULTS_FILES
from calc.site.views import render_view

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    "", "the-model/", "fixed-memory/", "counting-every-intermediate/", "what-autograd-keeps/",
    "the-quadratic-term/", "the-output-layer/", "peak-not-sum/", "making-it-smaller/",
    "where-2-265-gb-comes-from/", "measured-against-pytorch/", "reference/",
    "zero/", "tensor-parallelism/", "pipelines/", "fine-tuning/",
]


@pytest.fixture(scope="session")
def built(built_site):
    return built_site


class Page(HTMLParser):
    """Ids, links, and the calc views (their attributes and exact inner HTML) of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=False)
        self.text, self.ids, self.links, self.views = text, set(), [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "div" and "calc-view" in (a.get("class") or "").split():
            self.views.append(a)


def page(built: Path, url: str) -> Page:
    return Page((built / url / "index.html").read_text())


def inner_html_of_view(text: str, key: str) -> str:
    """The HTML inside the view's output box: what calc rendered for it."""
    start = re.search(rf'<div class="calc-view[^"]*" id="{re.escape(key)}"[^>]*>.*?<div class="calc-output">', text, re.S)
    html = text[start.end():]
    depth = 1
    for m in re.finditer(r"<(/?)div\b[^>]*>", html):
        depth += -1 if m.group(1) else 1
        if depth == 0:
            return html[: m.start()]
    raise AssertionError(f"unclosed view {key}")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_exists_with_a_title(built, url):
    p = page(built, url)
    assert "<h1" in p.text


@pytest.mark.parametrize("url", PAGES)
def test_every_table_is_what_calc_returns(built, url):
    p = page(built, url)
    results = {view: json.loads((ROOT / "validation" / name).read_text()) for view, name in RESULTS_FILES.items()}
    defaults = re.search(r'<form class="calc-inputs"[^>]*data-defaults="([^"]*)"', p.text)
    page_defaults = json.loads(html.unescape(defaults.group(1))) if defaults else {}
    for view in p.views:
        params = {**page_defaults, **json.loads(html.unescape(view["data-params"]))}
        extra = {"results": results[view["data-view"]]} if view["data-view"] in results else {}
        expected = render_view(view["data-view"], params, view["data-key"], **extra)
        assert inner_html_of_view(p.text, view["data-key"]) == expected, view["data-key"]


def cells(p: Page, row_id: str) -> list[str]:
    m = re.search(rf'<tr id="{re.escape(row_id)}"[^>]*>(.*?)</tr>', p.text, re.S)
    assert m, row_id
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), re.S)]


def test_seed_page_reproduces_the_seeds_figures(built):
    p = page(built, "counting-every-intermediate/")
    # as printed in the seed: 4,065,543,168 values, 16,262,172,672 bytes; 26,214,400 scores a block
    total = cells(p, "seed-total")
    assert "4,065,543,168" in total and "16,262,172,672" in total
    # columns: name, the figure in GB, formula, values, bytes each, bytes
    assert cells(p, "seed-scores")[3] == f"{48 * 26_214_400:,}"
    assert cells(p, "seed-logits")[3] == "51,463,168"
    assert "15.15 GiB = 16.26 GB" in cells(p, "seed-checks-total-unit")


def test_home_page_numbers_need_no_javascript(built):
    p = page(built, "")
    assert "summary-peak" in p.ids and "Largest batch whose peak fits in an H100 80GB" in p.text


def test_no_broken_internal_link_or_anchor(built):
    pages = {url: page(built, url) for url in PAGES}
    for url, p in pages.items():
        for href in p.links:
            if href.startswith(("http:", "https:", "mailto:")):
                continue
            target, anchor = urldefrag(urljoin("/" + url, href))
            target = urlsplit(target).path  # a query only sets inputs
            if target.startswith("/vendor/") or target.endswith((".css", ".js")):
                continue
            path = target.lstrip("/")
            assert path in pages or (built / path).exists(), f"{url}: broken link {href}"
            if anchor and path in pages:
                assert anchor in pages[path].ids, f"{url}: broken anchor {href}"


def test_citable_ids_still_exist(built):
    for line in (ROOT / "tests" / "citable_ids.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        url, anchor = line.split("#")
        assert anchor in page(built, url.strip("/") + ("/" if url.strip("/") else "")).ids, line


def test_no_directive_is_left_unexpanded_anywhere_in_the_built_site(built):
    # includes/ are Markdown too: the assumptions box on nine pages once showed "[[value budget]]"
    left = {path.relative_to(built).as_posix() for path in built.rglob("*.html") if "[[" in path.read_text()}
    assert not left
    assert "[[" not in page(built, "").text and "after the reserve" in page(built, "").text


def test_ids_are_unique_on_every_page(built):
    for url in PAGES:
        ids = re.findall(r'\sid="([^"]+)"', page(built, url).text)
        dupes = {i for i in ids if ids.count(i) > 1}
        assert not dupes, f"{url}: {dupes}"


def test_prose_formulas_are_typeset_when_the_site_is_built(built):
    text = page(built, "counting-every-intermediate/").text
    assert 'class="katex"' in text  # e.g. the attention scores, QK^T/sqrt(d_h)
    for url in PAGES:
        assert not re.search(r'<(span|div) class="arithmatex">\\[(\[]', page(built, url).text), url  # no LaTeX source left
    assert "katex.min.js" not in text  # the script is loaded only where calc's own formulas need it


def test_runtime_files_live_in_folders_named_by_version_and_content(built):
    """A host may cache vendor/ for ever: a new build's calc files must get new URLs."""
    assets = (built / "js" / "calc-assets.js").read_text()
    version = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    assert f"../vendor/pyodide/{version}/" in assets
    assert (built / "vendor" / "pyodide" / version / "pyodide.asm.wasm").is_file()
    (folder,) = re.findall(r"\.\./vendor/calc/([0-9a-f]{16})/", assets)
    calc = built / "vendor" / "calc" / folder
    files = sorted(p for p in calc.iterdir() if p.suffix not in (".gz", ".br"))
    assert {p.name for p in files} >= {"snapshot.bin", "empty_stdlib.zip"}
    digest = hashlib.sha256(b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in files)).hexdigest()
    assert folder == digest[:16]


def test_formulas_and_math_assets_ship_with_the_site(built):
    assert (built / "vendor" / "katex" / "katex.min.js").exists()
    assert (built / "vendor" / "katex" / "fonts").is_dir()
    assert r"\[" in page(built, "what-autograd-keeps/").text


def test_a_project_site_gets_a_working_404_page_and_a_full_sitemap(tmp_path):
    # Published under a path (a GitHub project site), SITE_URL names it: the 404 page, served
    # at any depth, links its assets under that path, and the sitemap lists every page.
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", SITE_URL="https://example.org/memory/")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    missing = (tmp_path / "404.html").read_text()
    links = re.findall(r'(?:href|src)="([^"#]+)"', missing)
    local = [link for link in links if not link.startswith(("https://", "http://", "data:", "mailto:"))]
    assert local and all(link.startswith("/memory/") for link in local), [x for x in local if not x.startswith("/memory/")]
    assert '<a href="https://example.org/memory/">Start from the question</a>' in missing  # a way home
    sitemap = (tmp_path / "sitemap.xml").read_text()
    pages = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("index.html"))
    for page_path in pages:
        url = "https://example.org/memory/" + ("" if page_path == "." else page_path + "/")
        assert f"<loc>{url}</loc>" in sitemap, url


def test_views_that_run_the_solver_wait_for_a_pause_in_typing(built):
    # the solver takes tens to hundreds of ms in the browser: the fine-tuning side by side,
    # the solver's table and the verdict card follow once typing pauses; every other live
    # view follows each keystroke
    deferred = {}
    for url in PAGES:
        for view in page(built, url).views:
            if "calc-live" in view["class"].split():
                deferred.setdefault(view["data-view"], set()).add(view.get("data-deferred") == "true")
    assert deferred["finetune"] == deferred["solver"] == deferred["verdict"] == {True}
    assert {True} not in [marks for name, marks in deferred.items() if name not in ("finetune", "solver", "verdict")]
    assert deferred["activations"] == {False}
