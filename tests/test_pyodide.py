"""calc's test suite, run again inside real Pyodide (Python 3.14 on WebAssembly, Node).

This proves the wheel the site ships works where the browser runs it. It needs Node, the
npm package `pyodide` (bin/setup runs `npm ci`) and the test tools' wheels in
.pyodide-wheels/ (bin/setup downloads them); a missing piece fails the test, never skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "engine").glob("test_*.py") if p.name != "test_cli.py")
SITE = ["tests/site/test_views.py", "tests/site/test_charts.py", "tests/site/test_memo.py", "tests/site/test_html.py",
        "tests/site/test_handle.py"]
SUITE = ENGINE + SITE
"""Every engine test but the CLI's (it starts subprocesses), and the site adapter's tests
that need no build and no browser."""


def test_calc_suite_passes_inside_pyodide(tmp_path):
    node = shutil.which("node")
    assert node, "node is required for the Pyodide tests"
    pyodide = ROOT / "node_modules" / "pyodide"
    assert (pyodide / "pyodide.asm.wasm").exists(), "run bin/setup (npm ci) first"
    wheels = ROOT / ".pyodide-wheels"
    assert any(wheels.glob("pytest-*.whl")), "run bin/setup to download the test wheels for Pyodide"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("calc-*-py3-none-any.whl")
    run = subprocess.run([node, str(ROOT / "tests/pyodide/run_suite.mjs"), str(pyodide), str(wheel), str(wheels),
                          str(ROOT), *SUITE], capture_output=True, text=True, cwd=ROOT, timeout=900)
    output = run.stdout + run.stderr
    assert "on Python 3.14" in output and "(emscripten)" in output, output[-3000:]
    assert run.returncode == 0, output[-5000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed and int(passed.group(1)) >= 150, output[-3000:]
    print(output.splitlines()[0], passed.group(0))
