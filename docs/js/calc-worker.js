// The Web Worker that runs calc: it boots Pyodide from the files shipped with the site,
// installs the calc wheel, and answers each request with calc's own JSON. Running here,
// off the main thread, loading and computing never make typing stutter.
import { loadPyodide } from "../vendor/pyodide/pyodide.mjs";

const vendor = new URL("../vendor/", import.meta.url);

async function boot() {
  const pyodide = await loadPyodide({ indexURL: new URL("pyodide/", vendor).href });
  const manifest = await (await fetch(new URL("calc/wheel.json", vendor))).json();
  await pyodide.loadPackage(new URL(`calc/${manifest.wheel}`, vendor).href, { messageCallback: () => {} });
  return pyodide.pyimport("calc.browser").handle;
}

const handle = boot();
handle.then(
  () => postMessage({ ready: true }),
  (error) => postMessage({ ready: false, error: String(error && error.message ? error.message : error) }),
);

onmessage = async ({ data }) => {
  try {
    const reply = (await handle)(data.payload);
    postMessage({ id: data.id, reply });
  } catch (error) {
    postMessage({ id: data.id, error: String(error && error.message ? error.message : error) });
  }
};
