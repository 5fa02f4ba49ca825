// The Web Worker that runs calc: it boots Pyodide from the files shipped with the site,
// installs the calc wheel, and answers each request with calc's own JSON. Running here,
// off the main thread, loading and computing never make typing stutter.
import { loadPyodide } from "../vendor/pyodide/pyodide.mjs";

const vendor = new URL("../vendor/", import.meta.url);

// Fetch the calc wheel while Pyodide boots, rather than after.
async function fetchWheel() {
  const manifest = await (await fetch(new URL("calc/wheel.json", vendor))).json();
  const response = await fetch(new URL(`calc/${manifest.wheel}`, vendor));
  if (!response.ok) throw new Error(`the calc wheel did not load (${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

async function boot() {
  const [pyodide, wheel] = await Promise.all([
    loadPyodide({ indexURL: new URL("pyodide/", vendor).href }),
    fetchWheel(),
  ]);
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  pyodide.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
  const handle = pyodide.pyimport("calc.browser").handle;
  handle(JSON.stringify({ state: {}, views: [{ kind: "view", name: "summary", params: {} }] })); // warm up
  return handle;
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
