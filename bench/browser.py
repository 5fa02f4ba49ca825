"""The live site in headless Chromium on 127.0.0.1: how fast it is to read and to edit.

    .venv/bin/python bench/browser.py [--runs 5] [--edits 100] [--page counting-every-intermediate/]

Builds the site, serves it with a plain static server, and reports medians over cold
runs (a fresh browser context each, so nothing is cached):

- first table: navigation to first contentful paint (the tables are in the HTML);
- time to interactive: navigation to the first table rendered by calc in the browser;
- the same for a bare page that only boots Pyodide from the same files (bench/pages/bare.html),
  and the ratio;
- recompute latency: an input event to the updated table, median and p95 over --edits edits;
- bytes transferred on a cold load (response bodies, uncompressed as served here).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM_ARGS  # noqa: E402

MARK_RENDERS = """
window.__renders = [];
document.addEventListener("calc:rendered", () => window.__renders.push(performance.now()));
"""

EDIT_LOOP = """async ([selector, edits]) => {
  const input = document.querySelector(selector);
  const times = [];
  for (let i = 0; i < edits; i++) {
    const done = new Promise((resolve) => document.addEventListener("calc:rendered", resolve, { once: true }));
    const start = performance.now();
    input.value = String(1 + (i % 16));
    input.dispatchEvent(new Event("input", { bubbles: true }));
    await done;
    await new Promise((resolve) => requestAnimationFrame(resolve));  // until the new table is painted
    times.push(performance.now() - start);
  }
  return times;
}"""


def build(site: Path) -> float:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    shutil.copytree(ROOT / "bench" / "pages", site / "bench")
    return 0.0


def serve(site: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--page", default="counting-every-intermediate/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build(site)
        server, base = serve(site)
        first_paint, interactive, bare, transferred, latencies = [], [], [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
            for run in range(args.runs):
                context = browser.new_context()
                sizes = []
                context.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
                page = context.new_page()
                page.add_init_script(MARK_RENDERS)
                page.goto(base + args.page)
                page.wait_for_function("window.__renders.length > 0", timeout=120_000)
                first_paint.append(page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                interactive.append(page.evaluate("window.__renders[0]"))
                page.wait_for_load_state("networkidle")
                transferred.append(sum(sizes))
                if run == 0:
                    latencies = page.evaluate(EDIT_LOOP, ["#calc-in-batch", args.edits])
                context.close()

                context = browser.new_context()
                page = context.new_page()
                page.goto(base + "bench/bare.html")
                page.wait_for_function("window.__ready !== undefined", timeout=120_000)
                bare.append(page.evaluate("window.__ready"))
                context.close()
            browser.close()
        server.shutdown()

    med = statistics.median
    print(f"page: /{args.page}, {args.runs} cold runs, Chromium headless on {os.cpu_count()} cores")
    print(f"first table (first contentful paint): median {med(first_paint):.0f} ms")
    print(f"time to interactive (first table rendered by calc): median {med(interactive):.0f} ms "
          f"(min {min(interactive):.0f}, max {max(interactive):.0f})")
    print(f"bare page booting Pyodide from the same files: median {med(bare):.0f} ms")
    print(f"time to interactive / bare boot: {med(interactive) / med(bare):.2f}")
    print(f"recompute, input event to updated table, {len(latencies)} edits: median {med(latencies):.1f} ms, "
          f"p95 {percentile(latencies, 95):.1f} ms")
    print(f"bytes transferred, cold: median {med(transferred) / 1e6:.2f} MB (uncompressed, as served)")


if __name__ == "__main__":
    main()
