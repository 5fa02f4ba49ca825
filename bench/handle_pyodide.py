"""calc's Python for one recompute, in Pyodide under Node: each live page's own request
(its views and its start), the batch changed at every call, after a warm-up.

    .venv/bin/python bench/handle_pyodide.py [--page counting-every-intermediate/]

This is the part of a recompute that calc does; bench/browser.py times the whole edit in
Chromium (where the worker, idle between a reader's keystrokes, takes about twice as long).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import ROOT, build  # noqa: E402

VIEW = re.compile(r'<div class="calc-view calc-live"([^>]*)>')
ATTRIBUTE = re.compile(r'data-([a-z-]+)="([^"]*)"')


def page_request(page: str) -> dict | None:
    """The request a built page's widget sends at each keystroke (not its deferred views)."""
    views = []
    for match in VIEW.finditer(page):
        data = dict(ATTRIBUTE.findall(match.group(1)))
        if data.get("deferred") != "true":
            views.append({"kind": "view", "name": data["view"], "key": data.get("key"),
                          "params": json.loads(html.unescape(data.get("params", "{}")))})
    form = re.search(r'<form class="calc-inputs"[^>]*data-defaults="([^"]*)"', page)
    if not views or not form:
        return None
    start = json.loads(html.unescape(form.group(1)))
    return {"state": start, "start": sorted(start), "views": views}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", action="append", help="a page's path (default: every live page)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build(site)
        requests = {}
        for index in sorted(site.glob("**/index.html")):
            path = index.parent.relative_to(site).as_posix() + "/"
            if args.page and path not in args.page:
                continue
            request = page_request(index.read_text())
            if request:
                requests[path] = request
        (Path(tmp) / "requests.json").write_text(json.dumps(requests))
        (wheel,) = site.glob("vendor/calc/*/*.whl")
        subprocess.run(["node", str(ROOT / "bench" / "handle_pyodide.mjs"), str(ROOT / "node_modules" / "pyodide"),
                        str(wheel), str(Path(tmp) / "requests.json")], cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
