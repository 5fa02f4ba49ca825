// Run calc's own tests inside real Pyodide (Python 3.14, WebAssembly) under Node.
//
//   node tests/pyodide/run_suite.mjs <pyodide dir> <calc wheel> <wheel dir> <repo root> <test file>...
//
// calc comes from its wheel (the one the site ships), the test tools from <wheel dir>,
// the test files, validation's committed JSON (results, the CUDA derivation, the step
// timeline) and the configs in validation/hf_configs/ are copied into Pyodide's file system.
// Exits with pytest's exit code.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { loadPyodide } from "pyodide";

const [pyodideDir, calcWheel, wheelDir, root, ...testFiles] = process.argv.slice(2);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });
const wheels = [calcWheel, ...readdirSync(wheelDir).filter((f) => f.endsWith(".whl")).map((f) => join(wheelDir, f))];
const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
for (const wheel of wheels) {
  pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: sitePackages });
}
const home = "/home/pyodide/project";
pyodide.FS.mkdirTree(`${home}/tests`);
pyodide.FS.mkdirTree(`${home}/validation`);
for (const name of readdirSync(join(root, "validation")).filter((f) => f.endsWith(".json"))) {
  pyodide.FS.writeFile(`${home}/validation/${name}`, readFileSync(join(root, "validation", name)));
}
pyodide.FS.mkdirTree(`${home}/validation/hf_configs`);
for (const name of readdirSync(join(root, "validation/hf_configs")).filter((f) => f.endsWith(".json"))) {
  pyodide.FS.writeFile(`${home}/validation/hf_configs/${name}`, readFileSync(join(root, "validation/hf_configs", name)));
}
for (const file of testFiles) {  // tests/engine/test_x.py keeps its folder
  pyodide.FS.mkdirTree(`${home}/${file.split("/").slice(0, -1).join("/")}`);
  pyodide.FS.writeFile(`${home}/${file}`, readFileSync(join(root, file)));
}
pyodide.setStdout({ batched: (line) => console.log(line) });
pyodide.setStderr({ batched: (line) => console.error(line) });
const code = await pyodide.runPythonAsync(`
import os, sys, calc, pytest
os.chdir("${home}")
assert "site-packages" in calc.__file__, calc.__file__  # calc from the wheel, not a checkout
print(f"calc {calc.__version__} from {calc.__file__} on Python {sys.version.split()[0]} ({sys.platform})")
pytest.main(["-q", "-p", "no:cacheprovider", "tests"])
`);
process.exit(Number(code));
