"""axe-core (from npm, a test-only dependency) finds no accessibility violation on any page,
in either scheme, on a desktop and on a phone; nor once calc is live and an input is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SCREENS_AND_SCHEMES

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
PAGES = ["", "the-model/", "fixed-memory/", "counting-every-intermediate/", "what-autograd-keeps/",
         "the-quadratic-term/", "the-output-layer/", "peak-not-sum/", "making-it-smaller/",
         "where-2-265-gb-comes-from/", "measured-against-pytorch/", "zero/", "tensor-parallelism/", "pipelines/",
         "reference/"]
RUN_AXE = """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations.map(v =>
  `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(" ")).join("; ")}`)"""


def violations(page) -> list[str]:
    assert AXE.exists(), "axe-core is missing: run npm ci (bin/setup)"
    # colours are judged as they end, not halfway through the theme's colour transitions
    page.add_style_tag(content="*, *::before, *::after { transition: none !important; animation: none !important; }")
    page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE)


@pytest.fixture(params=[SCREENS_AND_SCHEMES[0], SCREENS_AND_SCHEMES[3]], ids=["1440px-light", "390px-dark"])
def screen(request, browser):
    width, height, scheme = request.param
    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
    yield page
    page.close()


@pytest.mark.parametrize("path", PAGES, ids=[p.strip("/") or "home" for p in PAGES])
def test_no_page_has_an_accessibility_violation(screen, site_url, path):
    screen.goto(site_url + path)
    assert violations(screen) == []


def test_the_live_page_with_a_wrong_input_has_none_either(screen, site_url):
    screen.goto(site_url)
    screen.wait_for_selector("form.calc-inputs.calc-ready", timeout=60_000)
    screen.fill("#calc-in-batch", "0")
    screen.wait_for_selector("#calc-in-batch[aria-invalid='true']", timeout=10_000)
    assert violations(screen) == []
