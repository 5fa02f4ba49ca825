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

// Fast path: Pyodide's memory saved at build time with calc already imported
// (hooks/make_snapshot.mjs), fetched while the runtime downloads and compiles.
async function bootFromSnapshot() {
  const snapshot = fetch(new URL("calc/snapshot.bin", vendor)).then((response) => {
    if (!response.ok) throw new Error(`no snapshot (${response.status})`);
    return response.arrayBuffer();
  });
  // Every module calc uses is already in the snapshot's memory, so the standard library
  // archive can be an empty one (2.5 MB less to fetch); a missing module falls back below.
  const pyodide = await loadPyodide({
    indexURL: new URL("pyodide/", vendor).href,
    _loadSnapshot: snapshot,
    stdLibURL: new URL("calc/empty_stdlib.zip", vendor).href,
  });
  return pyodide.pyimport("calc.browser").handle;
}

// Slow path: start Python and install the wheel.
async function bootFromWheel() {
  const [pyodide, wheel] = await Promise.all([
    loadPyodide({ indexURL: new URL("pyodide/", vendor).href }),
    fetchWheel(),
  ]);
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  pyodide.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
  return pyodide.pyimport("calc.browser").handle;
}

async function boot() {
  let handle;
  try {
    handle = await bootFromSnapshot();
  } catch {
    handle = await bootFromWheel();
  }
  handle(JSON.stringify({ state: {}, views: [{ kind: "view", name: "summary", params: {} }] })); // warm up
  return handle;
}

let handle = boot();
handle.then(
  () => postMessage({ ready: true }),
  (error) => postMessage({ ready: false, error: String(error && error.message ? error.message : error) }),
);

onmessage = async ({ data }) => {
  try {
    let reply;
    try {
      reply = (await handle)(data.payload);
    } catch (error) {
      // Something outside the snapshot's memory was needed: start over with the full library.
      if (!String(error && error.message).includes("ModuleNotFoundError")) throw error;
      handle = bootFromWheel();
      reply = (await handle)(data.payload);
    }
    postMessage({ id: data.id, reply });
  } catch (error) {
    postMessage({ id: data.id, error: String(error && error.message ? error.message : error) });
  }
};
