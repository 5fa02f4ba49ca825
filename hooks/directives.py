"""MkDocs hook: expand calc directives into calc's own HTML (the build's other steps are
in hooks/build_assets.py).

In a page:

    [[calc activations id=seed-table accounting=seed]]      a whole view, on its own line
    … a peak of [[value bytes.peak]] for one sequence …     one number, inline

`id` is the prefix of every row id in the view (unique on the page). Every other key=value
is a parameter in calc's vocabulary (preset, d_model, batch, accounting, …), pinned for
this view; parameters not given take the defaults. Views are live: the first one on a page
brings the inputs panel, and the browser recomputes them as the reader edits it. Inline
values state facts about the setup the prose names and stay as built. The HTML is the same that the live
widgets produce in the browser, so pages are complete with JavaScript off.
"""

from __future__ import annotations

import json
import re
import sys
from html import escape
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc.catalog import DEFERRED_VIEWS, GROUP_READERS, OPTIONS, RESULTS_FILES, STATIC_VIEWS, VIEWS  # noqa: E402
from calc.errors import FieldError, InputError  # noqa: E402
from calc.fields import BY_NAME  # noqa: E402
from calc.site.form import inputs_panel  # noqa: E402
from calc.site.views import render_value, render_view  # noqa: E402

BLOCK = re.compile(r"^\[\[calc (?P<view>[a-z0-9-]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]\s*$", re.M)
INLINE = re.compile(r"\[\[value (?P<name>[a-z_.-]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]")
LEFTOVER = re.compile(r"\[\[(calc|value)\b[^\]]*\]\]")
INCLUDE = re.compile(r"\{!\s*(?P<name>[A-Za-z0-9_.-]+)\s*!\}")
"""markdown-include's `{!file!}`: put in place here, before the directives are expanded, so
that directives inside includes/ are expanded too."""

_results: dict[str, dict] = {}


def _params(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in args.split())


def _validation_results(view: str) -> dict:
    """The committed cases a static view shows, read once per build."""
    if view not in _results:
        _results[view] = json.loads((ROOT / "validation" / RESULTS_FILES[view]).read_text())
    return _results[view]


def _reader_text(name: str, value: str) -> str:
    """A pinned input as the inputs panel names it: 'Optimizer step: fused'."""
    field = BY_NAME.get(name)
    if field is None:
        return f"{name} {value}"
    shown = dict(field.choices).get(value, value)
    return f"{field.label}: {shown}"


DEFERRED = ' data-deferred="true"'
"""The mark of a view the page asks for once typing pauses (calc.catalog.DEFERRED_VIEWS)."""


def expand(markdown: str, where: str = "page", defaults: dict | None = None, solver_href: str = "zero/#zero-solver") -> str:
    """Markdown with every directive replaced by calc's HTML; PluginError on a bad one.

    `defaults` are the page's own starting inputs (front matter `calc:`), which the reader
    can change; a directive's parameters are pinned for its view. A page with live views
    shows the verdict card under its title (`solver_href`: the solver's answer at length,
    relative to the page)."""
    defaults = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (defaults or {}).items()}

    panel_placed = False

    def block(m: re.Match) -> str:
        nonlocal panel_placed
        params = _params(m["args"])
        key = params.pop("id", None)
        if not key:
            raise PluginError(f"{where}: [[calc {m['view']}]] needs an id=… for its row ids")
        if m["view"] not in VIEWS:
            raise PluginError(f"{where}: unknown calc view {m['view']!r}; known: {', '.join(VIEWS)}")
        extra = {"results": _validation_results(m["view"])} if m["view"] in RESULTS_FILES else {}
        try:
            html = render_view(m["view"], {**defaults, **params}, key, **extra)
        except (InputError, FieldError) as e:
            raise PluginError(f"{where}: [[calc {m['view']} id={key}]]: {e}") from None
        pinned = escape(json.dumps(params, sort_keys=True))
        live = m["view"] not in STATIC_VIEWS
        panel = ""
        if live and not panel_placed:
            views = set(re.findall(r"^\[\[calc ([a-z-]+)", markdown, re.M))
            groups = tuple(group for group, readers in GROUP_READERS.items() if views & readers)
            panel = inputs_panel(defaults, groups) + "\n\n"
            panel_placed = True
        fixed = "; ".join(_reader_text(k, v) for k, v in sorted(params.items()) if k not in OPTIONS.get(m["view"], {}))
        deferred = live and m["view"] in DEFERRED_VIEWS
        note = (f'<p class="calc-view-note">Follows the <a href="#inputs">inputs above</a>'
                f'{" once typing pauses" if deferred else ""}'
                f'{escape("; fixed for this table: " + fixed) if fixed else ""}.</p>') if live else ""
        return (f'{panel}<div class="calc-view{" calc-live" if live else ""}" id="{escape(key)}" data-view="{escape(m["view"])}" '
                f'data-key="{escape(key)}" data-params="{pinned}"{DEFERRED if deferred else ""}>{note}'
                f'<div class="calc-output">{html}</div></div>\n')

    def inline(m: re.Match) -> str:
        params = _params(m["args"])
        try:
            text = render_value(m["name"], {**defaults, **params})
        except (InputError, FieldError, KeyError) as e:
            raise PluginError(f"{where}: [[value {m['name']}]]: {e}") from None
        pinned = escape(json.dumps(params, sort_keys=True))
        return f'<span class="calc-value" data-value="{escape(m["name"])}" data-params="{pinned}">{escape(text)}</span>'

    out = INLINE.sub(inline, BLOCK.sub(block, markdown))
    if panel_placed:
        out = _with_verdict(out, defaults, solver_href)
    leftover = LEFTOVER.search(out)
    if leftover:
        raise PluginError(f"{where}: malformed directive {leftover.group(0)!r}")
    return out


TITLE = re.compile(r"^# .*$", re.M)


def _with_verdict(markdown: str, defaults: dict, solver_href: str) -> str:
    """The page with the verdict card (calc's verdict view, live: recomputed after the
    page's tables, as it runs the solver) under its title, or first where it has none.
    The card stays in view as the reader scrolls (docs/css/calc.css)."""
    html = render_view("verdict", defaults, "verdict")
    card = (f'<aside class="calc-verdict" aria-label="Verdict for these inputs">'
            f'<div class="calc-view calc-live" id="verdict" data-view="verdict" data-key="verdict" data-params="{{}}" '
            f'{DEFERRED}><div class="calc-output">{html}</div></div>'
            f'<a class="calc-verdict-why" href="{escape(solver_href)}">Why, and the other layouts</a></aside>\n\n')
    title = TITLE.search(markdown)
    at = title.end() + 1 if title else 0
    return markdown[:at] + "\n" + card + markdown[at:]


def with_includes(markdown: str) -> str:
    """The page with each `{!file!}` replaced by includes/file's text."""
    return INCLUDE.sub(lambda m: (ROOT / "includes" / m["name"]).read_text(), markdown)


def on_page_markdown(markdown, page, config, files):
    depth = page.url.count("/")  # directory URLs: "zero/" is one folder down from the site's root
    solver = "#zero-solver" if page.url == "zero/" else "../" * depth + "zero/#zero-solver"
    html = expand(with_includes(markdown), page.file.src_uri, page.meta.get("calc"), solver)
    # overrides/main.html starts calc's worker early on pages that have live tables
    page.meta["calc_live"] = 'class="calc-inputs"' in html
    return html


