"""MkDocs hook: expand calc directives into calc's own HTML, and ship the runtime assets.

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

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import zipfile
import sys
from html import escape
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calc.form import inputs_panel  # noqa: E402
from calc.inputs import InputError  # noqa: E402
from calc.views import PARALLEL_VIEWS, STATIC_VIEWS, VIEWS, render_value, render_view  # noqa: E402
from hooks.sparse_snapshot import pack as pack_snapshot  # noqa: E402

BLOCK = re.compile(r"^\[\[calc (?P<view>[a-z-]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]\s*$", re.M)
INLINE = re.compile(r"\[\[value (?P<name>[a-z_.]+)(?P<args>(?: [a-z_]+=[^\s\]]+)*)\]\]")
LEFTOVER = re.compile(r"\[\[(calc|value)\b[^\]]*\]\]")

KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "fonts")
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")

_results = None


def _params(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in args.split())


def _validation_results() -> dict:
    global _results
    if _results is None:
        _results = json.loads((ROOT / "validation" / "results.json").read_text())
    return _results


def expand(markdown: str, where: str = "page", defaults: dict | None = None) -> str:
    """Markdown with every directive replaced by calc's HTML; PluginError on a bad one.

    `defaults` are the page's own starting inputs (front matter `calc:`), which the reader
    can change; a directive's parameters are pinned for its view."""
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
        extra = {"results": _validation_results()} if m["view"] == "validation" else {}
        try:
            html = render_view(m["view"], {**defaults, **params}, key, **extra)
        except InputError as e:
            raise PluginError(f"{where}: [[calc {m['view']} id={key}]]: {e}") from None
        pinned = escape(json.dumps(params, sort_keys=True))
        live = m["view"] not in STATIC_VIEWS
        panel = ""
        if live and not panel_placed:
            views = set(re.findall(r"^\[\[calc ([a-z-]+)", markdown, re.M))
            panel = inputs_panel(defaults, compare="compare" in views, claim="reverse" in views,
                                 parallel=bool(views & PARALLEL_VIEWS)) + "\n\n"
            panel_placed = True
        fixed = ", ".join(f"{k} = {v}" for k, v in sorted(params.items()))
        note = (f'<p class="calc-view-note">Follows the <a href="#inputs">inputs above</a>'
                f'{escape("; fixed for this table: " + fixed) if fixed else ""}.</p>') if live else ""
        return (f'{panel}<div class="calc-view{" calc-live" if live else ""}" id="{escape(key)}" data-view="{escape(m["view"])}" '
                f'data-key="{escape(key)}" data-params="{pinned}">{note}<div class="calc-output">{html}</div></div>\n')

    def inline(m: re.Match) -> str:
        params = _params(m["args"])
        try:
            text = render_value(m["name"], {**defaults, **params})
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
    html = expand(markdown, page.file.src_uri, page.meta.get("calc"))
    # overrides/main.html starts calc's worker early on pages that have live tables
    page.meta["calc_live"] = 'class="calc-inputs"' in html
    return html


def _copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise PluginError(f"{source.relative_to(ROOT)} is missing: run `npm ci` first (bin/setup does)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def build_wheel(target: Path) -> str:
    """Build calc's pure-Python wheel (py3-none-any) into `target`; return its file name."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("calc-*.whl"):
        old.unlink()
    out = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(target), str(ROOT)],
                         capture_output=True, text=True)
    if out.returncode:
        raise PluginError(f"building the calc wheel failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    wheels = sorted(target.glob("calc-*-py3-none-any.whl"))
    if len(wheels) != 1:
        raise PluginError(f"expected one calc wheel, found {[w.name for w in wheels]}")
    return wheels[0].name


def _node() -> str:
    node = shutil.which("node")
    if not node:
        raise PluginError("node is required to build the site (it makes calc's Pyodide snapshot and compresses it)")
    return node


def make_snapshot(wheel: Path, target: Path) -> None:
    """Pyodide's memory with calc imported (hooks/make_snapshot.mjs), for a fast start,
    stored without its all-zero pages (hooks/sparse_snapshot.py)."""
    out = subprocess.run([_node(), str(ROOT / "hooks" / "make_snapshot.mjs"), str(ROOT / "node_modules" / "pyodide"),
                          str(wheel), str(target)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode or not target.exists():
        raise PluginError(f"making the Pyodide snapshot failed:\n{out.stderr[-3000:]}")
    target.write_bytes(pack_snapshot(target.read_bytes()))


def typeset_prose_math(site: Path) -> None:
    """The prose's formulas as KaTeX HTML, made at build time (hooks/typeset.mjs)."""
    pages = [str(path) for path in sorted(site.rglob("*.html"))]
    out = subprocess.run([_node(), str(ROOT / "hooks" / "typeset.mjs"), *pages], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise PluginError(f"typesetting the formulas failed:\n{out.stderr[-3000:]}")


COMPRESSIBLE = (".html", ".js", ".mjs", ".css", ".json", ".svg", ".wasm", ".bin", ".whl", ".zip", ".xml")


def precompress(site: Path) -> None:
    """A .gz and a .br beside every compressible file, for static hosts that serve
    pre-compressed files (Content-Encoding: gzip or br). Each only where it saves at least
    a tenth. Brotli comes from Node's zlib (hooks/brotli.mjs), cached in .cache/brotli."""
    files = [path for path in sorted(site.rglob("*")) if path.suffix in COMPRESSIBLE and path.is_file()]
    for path in files:
        data = path.read_bytes()
        packed = gzip.compress(data, compresslevel=6, mtime=0)
        target = path.with_name(path.name + ".gz")
        if len(packed) < 0.9 * len(data):
            target.write_bytes(packed)
        elif target.exists():
            target.unlink()
    out = subprocess.run([_node(), str(ROOT / "hooks" / "brotli.mjs"), str(ROOT / ".cache" / "brotli"), *map(str, files)],
                         capture_output=True, text=True)
    if out.returncode:
        raise PluginError(f"Brotli compression failed:\n{out.stderr[-3000:]}")


_command = "build"


def on_startup(command, dirty):
    """Remember whether this is `mkdocs serve`, whose server sends no pre-compressed files."""
    global _command
    _command = command


def on_post_build(config):
    site = Path(config["site_dir"])
    for name in KATEX_FILES:
        _copy(ROOT / "node_modules" / "katex" / "dist" / name, site / "vendor" / "katex" / name)
    pyodide_version = json.loads((ROOT / "node_modules" / "pyodide" / "package.json").read_text())["version"]
    for name in PYODIDE_FILES:
        _copy(ROOT / "node_modules" / "pyodide" / name, site / "vendor" / "pyodide" / pyodide_version / name)
    staging = site / "vendor" / "calc" / "next"
    wheel = build_wheel(staging)
    make_snapshot(staging / wheel, staging / "snapshot.bin")
    with zipfile.ZipFile(staging / "empty_stdlib.zip", "w"):
        pass  # the standard library the snapshot needs is already in its memory
    calc_dir = staging.rename(staging.with_name(content_hash(staging)))
    write_asset_names(site, pyodide_version, calc_dir.name, wheel)
    typeset_prose_math(site)
    if _command != "serve":
        precompress(site)


def content_hash(folder: Path) -> str:
    """16 hex digits of SHA-256 over the folder's file names and contents: the folder's name,
    so that a new build's calc files never share a URL with an old build's."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def write_asset_names(site: Path, pyodide_version: str, calc_folder: str, wheel: str) -> None:
    """js/calc-assets.js: where this build's runtime files are, for the worker."""
    (site / "js" / "calc-assets.js").write_text(
        "// Written by the build (hooks/calc_tables.py): where this build's runtime files are.\n"
        "// The folders are named by Pyodide's version and by a hash of calc's files, so a host may\n"
        "// cache them for ever; this file, like the pages, must be revalidated.\n"
        f'export const PYODIDE_DIR = new URL("../vendor/pyodide/{pyodide_version}/", import.meta.url).href;\n'
        f'export const CALC_DIR = new URL("../vendor/calc/{calc_folder}/", import.meta.url).href;\n'
        f'export const WHEEL = "{wheel}";\n')
