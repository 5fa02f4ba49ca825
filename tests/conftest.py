"""Shared fixtures: the built site, a static server for it, and Debian's Chromium."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site, built once with --strict; the build log must carry no warning."""
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr, out.stderr
    return site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site_url(built_site) -> str:
    """The built site served by a plain static server on 127.0.0.1 (a free port)."""
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def chromium_path() -> str:
    """Debian's Chromium (CHROMIUM overrides); a missing browser fails, never skips."""
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    found = shutil.which(path)
    if not found:
        pytest.fail(f"Chromium not found at {path}: run bin/setup --browser (apt-get install chromium)")
    return found


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium: Playwright cannot download its own here."""
    return {**browser_type_launch_args, "executable_path": chromium_path(), "args": CHROMIUM_ARGS}


SCREENS = ROOT / "tests" / "screens"
"""Where the browser tests leave screenshots of what they checked (not committed)."""
SCREENS_AND_SCHEMES = [(1440, 900, "light"), (1440, 900, "dark"), (390, 844, "light"), (390, 844, "dark")]
"""The readers the site is checked for: a 1440-px desktop and a 390-px phone, each light and dark."""


@pytest.fixture(params=SCREENS_AND_SCHEMES, ids=lambda p: f"{p[0]}px-{p[2]}")
def reader(request, browser):
    """A page at one of SCREENS_AND_SCHEMES; `reader.errors` collects console errors and
    uncaught exceptions, `reader.screen_name` names the screen for screenshots."""
    width, height, scheme = request.param
    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme=scheme)
    page.screen_name = f"{width}px-{scheme}"
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    yield page
    page.close()


def bring_into_view(locator) -> None:
    """Scroll `locator` to the top of the screen, and again once the views above it are laid
    out: a view off screen is not laid out (content-visibility), so its height is a guess
    until it is, and the first scroll can land short."""
    for _ in range(2):
        locator.evaluate("el => el.scrollIntoView({block: 'start'})")
        for _ in range(2):
            locator.page.wait_for_function("() => true", polling="raf")


def shot(page, name: str) -> None:
    """Save what `page` shows as tests/screens/{name}-{screen}.png, two frames on, so that
    what was just scrolled to is painted (Playwright's own frame wait: it works with the
    page's JavaScript off too)."""
    for _ in range(2):
        page.wait_for_function("() => true", polling="raf")
    SCREENS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENS / f"{name}-{page.screen_name}.png"))
