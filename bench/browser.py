"""The live site in headless Chromium on 127.0.0.1: how fast it is to read and to edit.

    .venv/bin/python bench/browser.py [--runs 10] [--edits 100] [--page counting-every-intermediate/]

Builds the site and serves it as a static host would: the pre-compressed `.br` (or else
`.gz`) beside a file is sent with its Content-Encoding to a browser that accepts it
(Chromium accepts br on 127.0.0.1), and everything under vendor/ is cacheable for a
year (its files change name or content only with a new build). Reports medians:

- first table: navigation to first contentful paint (the tables are in the HTML);
- time to interactive: navigation to the first table rendered by calc in the browser, cold
  (a fresh browser context each run) and warm (the same page again, HTTP cache filled);
  every cold load starts once the machine is idle (wait_until_idle), as a reader's would:
  the browser goes on freeing the previous context's memory for over a second after it
  closes, and that work would otherwise share the two cores with the load being timed;
- the same for a bare page that only boots Pyodide from the same files (bench/pages/bare.html),
  cold and warm, with its bytes, and each ratio;
- the floor: calc's worker alone on an empty page (bench/pages/snapshot.html), cold and warm,
  booting from the same snapshot with no page to lay out beside it;
- where the cold boot's time goes, from the worker's own marks (window.calcBoot): worker
  started, snapshot in memory, Python and calc ready;
- recompute latency: an input event to the updated table in the DOM, median and p95 over
  --edits edits in each of the first --edit-runs cold runs (pooled), one every 50 ms (back
  to back, each edit would also wait for the previous one's layout and paint), and of it
  the time in calc's Python (the worker's own clock, window.calcPythonMs): the rest is the
  messages between the page and its worker and patching the tables;
- the reverse calculator: editing the claim to the redrawn page (search included), median,
  p95 and max, 40 edits in each of the first --edit-runs cold runs (pooled: the p95 of one
  run's 40 is its third slowest, and ran from 9.5 to 17 ms over five runs of the same
  build), from the first table on (the worker's code is then still being optimised) and
  again once the page has settled;
- the longest main-thread task (long-task observer) during boot and during the edits;
- bytes transferred on a cold load: as served (Brotli), with gzip only, and uncompressed;
- requests a page without live tables makes for Pyodide (should be none).
"""

from __future__ import annotations

import argparse
import functools
import io
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from conftest import CHROMIUM_ARGS  # noqa: E402

MARK_RENDERS = """
window.__renders = [];
window.__long = [];
window.__python = []; // each render's time in calc's Python, in the worker
document.addEventListener("calc:rendered", () => {
  window.__renders.push(performance.now());
  window.__python.push(window.calcPythonMs);
});
new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push(e.duration); })
  .observe({ type: "longtask", buffered: true });
"""

# One edit every 50 ms, a fast typist's pace: each edit is timed from its input event to
# the updated table in the DOM, without the previous edit's rendering still in the way.
# Every edit asks for a new value (2, 3, 4, …), so no table comes from calc's memo.
EDIT_LOOP = """async ([selector, edits, first = 2]) => {
  const input = document.querySelector(selector);
  const times = [];
  for (let i = 0; i < edits; i++) {
    const done = new Promise((resolve) => document.addEventListener("calc:rendered", resolve, { once: true }));
    const start = performance.now();
    input.value = String(first + i); // never a value already shown: calc's memory of past renders must not flatter this
    input.dispatchEvent(new Event("input", { bubbles: true }));
    await done;
    times.push(performance.now() - start);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return times;
}"""


def _record_size(sizes: list, files: list, request) -> None:
    """A finished request's body bytes and address; none for one still finishing as its
    page closes (its sizes can no longer be read, and the load being measured is over)."""
    try:
        sizes.append(request.sizes()["responseBodySize"])
    except Exception:  # noqa: BLE001 — Playwright's TargetClosedError
        return
    files.append(request.url)


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
        """Serves `x.br` or `x.gz` for `x`, with its Content-Encoding, when the browser accepts it."""

        def log_message(self, *args):
            pass

        def send_head(self):
            path = Path(self.translate_path(self.path))
            if path.is_dir():
                path = path / "index.html"
            accepted = self.headers.get("Accept-Encoding", "")
            for encoding, suffix in (("br", ".br"), ("gzip", ".gz")):
                packed = path.with_name(path.name + suffix)
                if encoding in accepted and packed.is_file():
                    body = packed.read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", self.guess_type(str(path)))
                    self.send_header("Content-Encoding", encoding)
                    self.send_header("Content-Length", str(len(body)))
                    self._cache_headers()
                    self.end_headers()
                    return io.BytesIO(body)
            return super().send_head()

        def end_headers(self):
            if not getattr(self, "_cached", False):
                self._cache_headers()
            super().end_headers()

        def _cache_headers(self):
            self._cached = True
            immutable = "/vendor/" in self.path
            self.send_header("Cache-Control", "public, max-age=31536000" if immutable else "no-cache")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/"


def _raw_size(site: Path, base: str, url: str, packed: str = "") -> int:
    """The size of the file behind `url`; with packed=".gz", of its .gz where it has one."""
    path = site / url[len(base):].split("?")[0].split("#")[0]
    if path.is_dir() or not path.suffix:
        path = path / "index.html"
    if packed and path.with_name(path.name + packed).is_file():
        path = path.with_name(path.name + packed)
    return path.stat().st_size if path.is_file() else 0


def _cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of every CPU since boot, from /proc/stat; None off Linux."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def wait_until_idle(quiet_share: float = 0.10, quiet_samples: int = 3, sample_s: float = 0.1, most_s: float = 5.0) -> float:
    """Wait until the CPUs were busy under `quiet_share` of the time in each of
    `quiet_samples` samples of `sample_s` in a row (at most `most_s`); returns seconds waited.
    Where /proc/stat cannot be read, waits `most_s` / 2."""
    start = time.monotonic()
    before = _cpu_ticks()
    if before is None:
        time.sleep(most_s / 2)
        return most_s / 2
    quiet = 0
    while quiet < quiet_samples and time.monotonic() - start < most_s:
        time.sleep(sample_s)
        after = _cpu_ticks()
        busy, total = after[0] - before[0], after[1] - before[1]
        quiet = quiet + 1 if total and busy / total < quiet_share else 0
        before = after
    return time.monotonic() - start


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--edit-runs", type=int, default=3, help="cold runs that also time the edits (all pooled)")
    parser.add_argument("--page", default="counting-every-intermediate/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build(site)
        server, base = serve(site)
        first_paint, interactive, warm, bare, transferred, raw, latencies = [], [], [], [], [], [], []
        long_boot, long_edit, plain_page_requests, reverse, settled, run_medians = [], [], 0, [], [], []
        med = statistics.median
        bare_warm, bare_bytes, bare_raw, phases, gzipped, bare_gzipped = [], [], [], [], [], []
        alone, alone_warm, long_plain, waited, python_ms = [], [], 0, [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
            for run in range(args.runs):
                context = browser.new_context()
                sizes, files = [], []
                context.on("requestfinished", functools.partial(_record_size, sizes, files))
                page = context.new_page()
                page.add_init_script(MARK_RENDERS)
                waited.append(wait_until_idle())
                page.goto(base + args.page)
                page.wait_for_function("window.__renders.length > 0", timeout=120_000)
                first_paint.append(page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0].startTime"))
                interactive.append(page.evaluate("window.__renders[0]"))
                phases.append(page.evaluate("window.calcBoot"))
                page.wait_for_load_state("networkidle")
                long_boot.append(max(page.evaluate("window.__long"), default=0))
                transferred.append(sum(sizes))
                raw.append(sum(_raw_size(site, base, url) for url in files))
                gzipped.append(sum(_raw_size(site, base, url, ".gz") for url in files))
                if run < args.edit_runs:
                    page.evaluate("window.__long = []; window.__python = []")
                    edits = page.evaluate(EDIT_LOOP, ["#calc-in-batch", args.edits])
                    latencies += edits
                    python_ms += page.evaluate("window.__python")
                    run_medians.append(med(edits))
                    long_edit.append(max(page.evaluate("window.__long"), default=0))
                if run < args.edit_runs:  # the reverse calculator, pooled over the same runs as the edits
                    page.goto(base + "where-2-265-gb-comes-from/")
                    page.wait_for_function("window.__renders.length > 0", timeout=120_000)
                    reverse += page.evaluate(EDIT_LOOP, ["#calc-in-claim", 40])
                    page.wait_for_timeout(3000)  # the worker's warm-up and the deferred verdict are done
                    settled += page.evaluate(EDIT_LOOP, ["#calc-in-claim", 40, 100])
                if run == 0:
                    fetched = []
                    page.on("request", lambda r: fetched.append(r.url))
                    page.goto(base + "measured-against-pytorch/")
                    page.wait_for_load_state("networkidle")
                    long_plain = max(page.evaluate("window.__long"), default=0)
                    plain_page_requests = len([u for u in fetched if "/vendor/pyodide/" in u or "/vendor/calc/" in u])
                page.goto(base + args.page)  # again: the HTTP cache is warm
                page.wait_for_function("window.__renders.length > 0", timeout=120_000)
                warm.append(page.evaluate("window.__renders[0]"))
                context.close()

                context = browser.new_context()
                sizes, files = [], []
                context.on("requestfinished", functools.partial(_record_size, sizes, files))
                page = context.new_page()
                waited.append(wait_until_idle())
                page.goto(base + "bench/bare.html")
                page.wait_for_function("window.__ready !== undefined", timeout=120_000)
                bare.append(page.evaluate("window.__ready"))
                page.wait_for_load_state("networkidle")
                bare_bytes.append(sum(sizes))
                bare_raw.append(sum(_raw_size(site, base, url) for url in files))
                bare_gzipped.append(sum(_raw_size(site, base, url, ".gz") for url in files))
                page.goto(base + "bench/bare.html")
                page.wait_for_function("window.__ready !== undefined", timeout=120_000)
                bare_warm.append(page.evaluate("window.__ready"))
                context.close()

                context = browser.new_context()
                page = context.new_page()
                waited.append(wait_until_idle())
                for times in (alone, alone_warm):  # cold, then again with the HTTP cache filled
                    page.goto(base + "bench/snapshot.html")
                    page.wait_for_function("window.__ready !== undefined", timeout=120_000)
                    times.append(page.evaluate("window.__ready"))
                context.close()
            browser.close()
        server.shutdown()

    med = statistics.median
    print(f"page: /{args.page}, {args.runs} cold runs, Chromium headless on {os.cpu_count()} cores; medians; "
          f"bare = bench/bare.html, booting Pyodide alone from the same files")
    def against_bare(name, mine, theirs, unit, target=""):
        """A row: this site's median beside the bare page's, and their ratio."""
        scale, digits = (1e6, 2) if unit == "MB" else (1, 0)
        return (name, f"{med(mine) / scale:.{digits}f} {unit}", f"{med(theirs) / scale:.{digits}f} {unit}",
                f"{med(mine) / med(theirs):.2f}", target)

    rows = [
        ("first table (first contentful paint)", f"{med(first_paint):.0f} ms", "", "", "at first paint"),
        against_bare("time to interactive, cold", interactive, bare, "ms", "0.40 x bare"),
        against_bare("time to interactive, warm HTTP cache", warm, bare_warm, "ms", "0.5 s"),
        against_bare("calc's worker alone, empty page, cold", alone, bare, "ms", "(the floor)"),
        against_bare("calc's worker alone, empty page, warm", alone_warm, bare_warm, "ms", "(the floor)"),
        against_bare("bytes, cold, as served (br)", transferred, bare_bytes, "MB", "5 MB"),
        against_bare("bytes, cold, a host with gzip only", gzipped, bare_gzipped, "MB"),
        against_bare("bytes, cold, uncompressed", raw, bare_raw, "MB"),
        ("recompute, median", f"{med(latencies):.1f} ms", "", "", "4 ms"),
        ("recompute, p95", f"{percentile(latencies, 95):.1f} ms", "", "", "16 ms"),
        ("recompute, calc's Python alone, median", f"{med(python_ms):.1f} ms", "", "", "(the rest: messages, DOM)"),
        ("longest main-thread task, boot (worst run)", f"{max(long_boot):.0f} ms", "", "", "50 ms"),
        ("longest main-thread task, page without calc", f"{long_plain:.0f} ms", "", "", "(the theme's own start)"),
        ("longest main-thread task, edits", f"{max(long_edit, default=0):.0f} ms", "", "", "50 ms"),
        ("Pyodide requests, page without live tables", str(plain_page_requests), "", "", "0"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  {'this site':>10}  {'bare':>10}  {'ratio':>6}  target")
    for name, mine, theirs, ratio, target in rows:
        print(f"{name:{width}}  {mine:>10}  {theirs:>10}  {ratio:>6}  {target}")
    print(f"each cold load started once the CPUs were idle: waited {med(waited):.1f} s (median), "
          f"{max(waited):.1f} s at most")
    print(f"time to interactive, cold: min {min(interactive):.0f}, max {max(interactive):.0f} ms; "
          f"warm: min {min(warm):.0f}, max {max(warm):.0f} ms")
    # each cold run's page was loaded just before its bare page, on the same machine
    paired = sorted(mine / theirs for mine, theirs in zip(interactive, bare))
    print("time to interactive, cold, each run against its own bare page: "
          + ", ".join(f"{r:.2f}" for r in paired) + f" (target 0.40; {sum(r <= 0.40 for r in paired)} of "
          f"{len(paired)} runs at or below it)")
    steps = [s for s in ("started", "snapshot", "python") if all(p and s in p for p in phases)]
    if steps:
        print("cold boot, worker's marks (ms since navigation, median): "
              + ", ".join(f"{step} {med(p[step] for p in phases):.0f}" for step in steps)
              + f"; booted from: {', '.join(sorted({p['path'] for p in phases if p}))}")
    print(f"recompute: {len(latencies)} edits ({args.edits} in each of {len(run_medians)} cold runs, pooled), an input "
          f"event to the updated table, one edit every 50 ms; each run's median: "
          + ", ".join(f"{m:.1f}" for m in run_medians) + " ms")
    print(f"reverse calculator, claim edited to a table of nearest setups (every view of its page), "
          f"{len(reverse)} edits (40 in each of {min(args.edit_runs, args.runs)} cold runs, pooled; target p95 16 ms): median {med(reverse):.1f} ms, p95 {percentile(reverse, 95):.1f} ms, "
          f"max {max(reverse):.1f} ms, from the first table on; 3 s later, {len(settled)} more: median "
          f"{med(settled):.1f} ms, p95 {percentile(settled, 95):.1f} ms, max {max(settled):.1f} ms")

if __name__ == "__main__":
    main()
