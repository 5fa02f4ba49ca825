// Boot Pyodide once at build time, install the calc wheel, import every calc module and
// render one view, then save Pyodide's memory: the browser starts from this snapshot and
// skips Python's start-up and calc's imports.
//
//   node hooks/make_snapshot.mjs <pyodide dir> <calc wheel> <output file>
import { readFileSync, writeFileSync } from "node:fs";
import { loadPyodide } from "pyodide";

const [pyodideDir, wheel, output] = process.argv.slice(2);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/", _makeSnapshot: true });
const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: sitePackages });
pyodide.runPython(`
import gc, json, pkgutil, importlib, calc
for module in pkgutil.walk_packages(calc.__path__, "calc."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
import calc.browser
from calc.views import STATIC_VIEWS, VIEWS
# render every view once, so that anything imported on first use is already in memory
calc.browser.handle(json.dumps({"state": {}, "views": [{"kind": "view", "name": n} for n in VIEWS if n not in STATIC_VIEWS]}))
gc.collect()
`);
writeFileSync(output, pyodide.makeMemorySnapshot());
