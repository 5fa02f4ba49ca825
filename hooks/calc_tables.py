"""MkDocs hook: expand calc directives into calc's own HTML, and ship the runtime assets.

In a page:

    [[calc activations id=seed-table accounting=seed]]      a whole view, on its own line
    … a peak of [[value bytes.peak]] for one sequence …     one number, inline

`id` is the prefix of every row id in the view (unique on the page). Every other key=value
is a parameter in calc's vocabulary (preset, d_model, batch, accounting, …), pinned for
this view; parameters not given take the defaults. The HTML is the same that the live
widgets produce in the browser, so pages are complete with JavaScript off.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from html import escape
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc.inputs import InputError  # noqa: E402
from calc.views import VIEWS, render_value, render_view  # noqa: E402

BLOCK = re.compile(r"^\[\[calc (?P<view>[a-z-]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]\s*$", re.M)
INLINE = re.compile(r"\[\[value (?P<name>[a-z_.]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]")
LEFTOVER = re.compile(r"\[\[(calc|value)\b[^\]]*\]\]")

KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "fonts")

_results = None


def _params(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in args.split())


def _validation_results() -> dict:
    global _results
    if _results is None:
        _results = json.loads((ROOT / "validation" / "results.json").read_text())
    return _results


def expand(markdown: str, where: str = "page") -> str:
    """Markdown with every directive replaced by calc's HTML; PluginError on a bad one."""

    def block(m: re.Match) -> str:
        params = _params(m["args"])
        key = params.pop("id", None)
        if not key:
            raise PluginError(f"{where}: [[calc {m['view']}]] needs an id=… for its row ids")
        if m["view"] not in VIEWS:
            raise PluginError(f"{where}: unknown calc view {m['view']!r}; known: {', '.join(VIEWS)}")
        extra = {"results": _validation_results()} if m["view"] == "validation" else {}
        try:
            html = render_view(m["view"], params, key, **extra)
        except InputError as e:
            raise PluginError(f"{where}: [[calc {m['view']} id={key}]]: {e}") from None
        pinned = escape(json.dumps(params, sort_keys=True))
        return (f'<div class="calc-view" id="{escape(key)}" data-view="{escape(m["view"])}" data-key="{escape(key)}" '
                f'data-params="{pinned}">{html}</div>\n')

    def inline(m: re.Match) -> str:
        params = _params(m["args"])
        try:
            text = render_value(m["name"], params)
        except (InputError, KeyError) as e:
            raise PluginError(f"{where}: [[value {m['name']}]]: {e}") from None
        pinned = escape(json.dumps(params, sort_keys=True))
        return f'<span class="calc-value" data-value="{escape(m["name"])}" data-params="{pinned}">{escape(text)}</span>'

    out = INLINE.sub(inline, BLOCK.sub(block, markdown))
    leftover = LEFTOVER.search(out)
    if leftover:
        raise PluginError(f"{where}: malformed directive {leftover.group(0)!r}")
    return out


def on_page_markdown(markdown, page, config, files):
    return expand(markdown, page.file.src_uri)


def _copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise PluginError(f"{source.relative_to(ROOT)} is missing: run `npm ci` first (bin/setup does)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def on_post_build(config):
    site = Path(config["site_dir"])
    for name in KATEX_FILES:
        _copy(ROOT / "node_modules" / "katex" / "dist" / name, site / "vendor" / "katex" / name)
