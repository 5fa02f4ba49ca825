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
import calc.site.browser
from calc.catalog import STATIC_VIEWS, VIEWS
# render every view once, so that anything imported on first use is already in memory
calc.site.browser.handle(json.dumps({"state": {}, "views": [{"kind": "view", "name": n} for n in VIEWS if n not in STATIC_VIEWS]}))
# but not its answers: they would be downloaded with the snapshot (0.7 MB of Brotli)
calc.site.browser.forget_everything()
gc.collect()
# Everything alive now (modules, classes, calc's tables) lives as long as the page: moved to
# the permanent generation, the collector never walks it again, and a collection during a
# recompute takes about 2 ms instead of about 9 (measured in Pyodide under Node).
gc.freeze()
`);
zeroFreeMemory(pyodide._module);
writeFileSync(output, pyodide.makeMemorySnapshot());

// Memory that malloc holds free still has whatever was last written there (import-time
// garbage, about 2.7 MB). Borrow every free block (capping malloc at the memory it already
// has, so that nothing new is taken), zero it and give it back: the snapshot compresses
// better and the allocator's state is unchanged but for the zeros.
function zeroFreeMemory(module) {
  const limit = module._malloc_footprint_limit();
  module._malloc_set_footprint_limit(module._malloc_footprint());
  const borrowed = [];
  for (let size = 1 << 24; size >= 8; size >>= 1) {
    for (let block = module._malloc(size); block; block = module._malloc(size)) {
      module.HEAPU8.fill(0, block, block + size);
      borrowed.push(block);
    }
  }
  borrowed.forEach((block) => module._free(block));
  module._malloc_set_footprint_limit(limit);
}
