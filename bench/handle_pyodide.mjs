// calc's handle in Pyodide under Node: each request of requests.json, with the batch
// changed at every call as a reader's edits change it, after enough calls (or seconds)
// for V8 to compile the hot code to its optimised tier. Prints the median and p90 in ms. Run by
// bench/handle_pyodide.py, which builds the site and writes the requests.
//
//   node bench/handle_pyodide.mjs <pyodide dir> <calc wheel> <requests.json>
import { readFileSync } from "node:fs";
import { loadPyodide } from "pyodide";

const [pyodideDir, wheel, requestsFile] = process.argv.slice(2);
const pyodide = await loadPyodide({ indexURL: pyodideDir + "/" });
const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
pyodide.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: sitePackages });
const calc = pyodide.pyimport("calc.site.browser");
const WARM = { calls: 1500, ms: 4000 };
const TIMED = { calls: 600, ms: 6000 };
for (const [page, request] of Object.entries(JSON.parse(readFileSync(requestsFile, "utf8")))) {
  let batch = 2;
  const ask = () => JSON.stringify({ ...request, state: { ...request.state, batch: String(batch++) } });
  for (let i = 0, until = performance.now() + WARM.ms; i < WARM.calls && performance.now() < until; i++) calc.handle(ask());
  const times = [];
  for (let until = performance.now() + TIMED.ms; times.length < TIMED.calls && performance.now() < until;) {
    const text = ask();
    const start = performance.now();
    calc.handle(text);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const at = (p) => times[Math.floor(p * (times.length - 1))].toFixed(3);
  console.log(`${page.padEnd(40)} median ${at(0.5)} ms, p90 ${at(0.9)} ms (${times.length} calls)`);
}
