"""MkDocs hook: the build's steps after the pages are written — the runtime assets the
live tables need (Pyodide and KaTeX from node_modules, calc's wheel and its Pyodide memory
snapshot, in folders named by version and content hash), the prose's formulas typeset,
and every compressible file pre-compressed."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hooks.sparse_snapshot import pack as pack_snapshot  # noqa: E402

KATEX_FILES = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "fonts")
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")


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


def make_snapshot(wheel: Path, target: Path) -> int:
    """Pyodide's memory with calc imported (hooks/make_snapshot.mjs), for a fast start,
    stored without its all-zero pages (hooks/sparse_snapshot.py); returns its full length
    in bytes."""
    out = subprocess.run([_node(), str(ROOT / "hooks" / "make_snapshot.mjs"), str(ROOT / "node_modules" / "pyodide"),
                          str(wheel), str(target)], capture_output=True, text=True, cwd=ROOT)
    if out.returncode or not target.exists():
        raise PluginError(f"making the Pyodide snapshot failed:\n{out.stderr[-3000:]}")
    memory = target.read_bytes()
    target.write_bytes(pack_snapshot(memory))
    return len(memory)


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
    snapshot_bytes = make_snapshot(staging / wheel, staging / "snapshot.bin")
    with zipfile.ZipFile(staging / "empty_stdlib.zip", "w"):
        pass  # the standard library the snapshot needs is already in its memory
    calc_dir = staging.rename(staging.with_name(content_hash(staging)))
    write_asset_names(site, pyodide_version, calc_dir.name, wheel, snapshot_bytes)
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


def write_asset_names(site: Path, pyodide_version: str, calc_folder: str, wheel: str, snapshot_bytes: int) -> None:
    """js/calc-assets.js: where this build's runtime files are, and the snapshot's full
    length in bytes (Pyodide sizes its memory by it before the snapshot has arrived)."""
    (site / "js" / "calc-assets.js").write_text(
        "// Written by the build (hooks/build_assets.py): where this build's runtime files are.\n"
        "// The folders are named by Pyodide's version and by a hash of calc's files, so a host may\n"
        "// cache them for ever; this file, like the pages, must be revalidated.\n"
        f'export const PYODIDE_DIR = new URL("../vendor/pyodide/{pyodide_version}/", import.meta.url).href;\n'
        f'export const CALC_DIR = new URL("../vendor/calc/{calc_folder}/", import.meta.url).href;\n'
        f'export const WHEEL = "{wheel}";\n'
        f'export const SNAPSHOT_BYTES = {snapshot_bytes};\n')
