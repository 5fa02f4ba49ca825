// The Web Worker that runs calc: it boots Pyodide from the files shipped with the site,
// installs the calc wheel, and answers each request with calc's own JSON. Running here,
// off the main thread, loading and computing never make typing stutter.
// The file names come from the build (js/calc-assets.js, written by hooks/build_assets.py).
import { CALC_DIR, PYODIDE_DIR, SNAPSHOT_BYTES, WHEEL } from "./calc-assets.js";

const loadPyodide = async (options) => (await import(new URL("pyodide.mjs", PYODIDE_DIR).href)).loadPyodide(options);

// Pyodide asks for its WebAssembly and its JavaScript only once its own module has loaded
// and read its settings, about 80 ms into the worker's life. Both are asked for here, at
// once: the JavaScript by importing it (Pyodide's own import of the same address then
// finds it loaded or loading), the WebAssembly by a fetch whose response is handed to
// Pyodide's first fetch of that address, so it is downloaded once.
function startRuntimeDownloads() {
  import(new URL("pyodide.asm.mjs", PYODIDE_DIR).href).catch(() => {}); // a failure is heard by Pyodide's own import
  const wasm = new URL("pyodide.asm.wasm", PYODIDE_DIR).href;
  let early = fetch(wasm);
  early.catch(() => {});
  const fetchAnything = globalThis.fetch;
  globalThis.fetch = (resource, options) => {
    if (early && String(resource) === wasm && !(options && options.method && options.method !== "GET")) {
      const response = early;
      early = null;
      return response;
    }
    return fetchAnything(resource, options);
  };
}
startRuntimeDownloads();

// Fetch the calc wheel while Pyodide boots, rather than after.
async function fetchWheel() {
  const response = await fetch(new URL(WHEEL, CALC_DIR));
  if (!response.ok) throw new Error(`the calc wheel did not load (${response.status})`);
  return new Uint8Array(await response.arrayBuffer());
}

// Pyodide's memory from its sparse form (hooks/sparse_snapshot.py), into `memory`, a zeroed
// buffer of the full length, as the download arrives: each stored page is copied to its
// place; the pages left out were all zeros. Resolves once the last byte is in.
async function unpackSnapshot(body, memory) {
  const reader = body.getReader();
  let header = new Uint8Array(0); // the bytes read so far, until the page list is whole
  let page = 0, length = 0, places = null; // places[k]: where the k-th stored page goes
  let at = 0; // bytes of stored pages copied so far
  const copy = (bytes) => {
    for (let from = 0; from < bytes.length;) {
      const k = Math.floor(at / page), within = at % page; // stored pages are whole but for memory's last
      const size = Math.min(page - within, bytes.length - from);
      if (k >= places.length || places[k] + within + size > length) throw new Error("the snapshot has more bytes than its pages");
      memory.set(bytes.subarray(from, from + size), places[k] + within);
      from += size;
      at += size;
    }
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (places) {
      copy(value);
      continue;
    }
    header = concat(header, value);
    if (header.length < 16) continue;
    const view = new DataView(header.buffer, header.byteOffset);
    if (view.getUint32(0, true) !== 0x504e5343) throw new Error("not a calc snapshot"); // "CSNP"
    const count = view.getUint32(12, true);
    if (header.length < 16 + count) continue;
    [length, page] = [view.getUint32(4, true), view.getUint32(8, true)];
    if (!page) throw new Error("the snapshot's page size is 0");
    if (length !== memory.length) throw new Error(`the snapshot holds ${length} bytes, this build expects ${memory.length}`);
    places = [];
    header.subarray(16, 16 + count).forEach((stored, i) => stored && places.push(i * page));
    copy(header.subarray(16 + count));
  }
  const whole = places && places.length && (places.length - 1) * page + Math.min(page, length - places.at(-1));
  if (!places || at !== whole) throw new Error("the snapshot arrived cut short");
}

function concat(a, b) {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

// Fast path: Pyodide's memory saved at build time with calc already imported
// (hooks/make_snapshot.mjs), fetched while the runtime downloads and compiles.
async function bootFromSnapshot() {
  // Pyodide reads only the snapshot's length before it compiles its WebAssembly, and its
  // bytes only once the runtime has started, after its file-system hook (fsInit). So it is
  // handed the buffer at once and the hook waits for the download to fill it: the 9.6 MB
  // of WebAssembly compile while the snapshot downloads, not after it.
  const memory = new Uint8Array(SNAPSHOT_BYTES);
  const filled = fetch(new URL("snapshot.bin", CALC_DIR)).then(async (response) => {
    if (!response.ok) throw new Error(`no snapshot (${response.status})`);
    try {
      await unpackSnapshot(response.body, memory);
    } catch (error) {
      memory.fill(0); // what arrived before the fault: Pyodide must find no snapshot, as if none came
      throw error;
    }
    mark("snapshot");
  });
  // Every module calc uses is already in the snapshot's memory, so the standard library
  // archive can be an empty one (2.5 MB less to fetch); a missing module falls back below.
  const booted = loadPyodide({
    indexURL: PYODIDE_DIR,
    _loadSnapshot: memory,
    fsInit: () => filled.catch(() => {}), // its failure is heard below
    stdLibURL: new URL("empty_stdlib.zip", CALC_DIR).href,
  });
  // A snapshot that does not arrive whole fails the boot at once; the runtime left behind
  // finds no snapshot in its memory and stops.
  booted.catch(() => {});
  const pyodide = await Promise.race([booted, filled.then(() => booted)]);
  return pyodide.pyimport("calc.site.browser");
}

// Slow path: start Python and install the wheel.
async function bootFromWheel() {
  const [pyodide, wheel] = await Promise.all([
    loadPyodide({ indexURL: PYODIDE_DIR }),
    fetchWheel(),
  ]);
  const sitePackages = pyodide.runPython("import site; site.getsitepackages()[0]");
  pyodide.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
  return pyodide.pyimport("calc.site.browser");
}

// When each step of the boot ended (Unix time, ms), for bench/browser.py: "started",
// "snapshot" (in memory), "python" (Pyodide and calc ready); "path" says which way it booted.
const boot = { path: "snapshot" };
function mark(step) {
  boot[step] = performance.timeOrigin + performance.now();
}

// Resolves with the calc.site.browser module. The page's first request is its first
// render: a render here, before it, would only delay that one.
async function start() {
  mark("started");
  let calc;
  try {
    calc = await bootFromSnapshot();
  } catch {
    boot.path = "wheel";
    calc = await bootFromWheel();
  }
  mark("python");
  return calc;
}

// Exercise every view once the page has its first tables, one render per task so that an
// edit never waits behind more than one (calc.site.browser.warm_up says why), and none
// while the reader is editing: a step waits until no request has come or been answered for
// WARM_UP_PAUSE_MS.
// It starts once the page's first request is answered: started at "ready", its first step
// (about 50 ms) ran while that request was on its way, and the first tables waited for it.
const WARM_UP_PAUSE_MS = 300;
let lastBusyAt = 0;
let warmUpStarted = false;
async function warmUp() {
  if (warmUpStarted) return;
  warmUpStarted = true;
  const step = (await calc).warm_up;
  let i = 0;
  const next = () => {
    const quiet = performance.now() - lastBusyAt;
    if (quiet < WARM_UP_PAUSE_MS) {
      setTimeout(next, WARM_UP_PAUSE_MS - quiet);
      return;
    }
    try {
      if (step(i++)) setTimeout(next, 0);
    } catch {
      // only ever a speed-up: a failure here leaves the edits to find it
    }
  };
  setTimeout(next, 0);
}

// Pyodide does not always settle its promise when one of its own files fails to load (a
// missing pyodide.asm.wasm leaves it pending): ask for the files first, and fail at once
// with their names if any is missing. Only this check's failure matters.
async function requireRuntimeFiles() {
  const names = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm"];
  const answers = await Promise.all(names.map((name) => fetch(new URL(name, PYODIDE_DIR), { method: "HEAD" })));
  const missing = names.map((name, i) => [name, answers[i]]).filter(([, answer]) => !answer.ok)
    .map(([name, answer]) => `${name} (${answer.status})`);
  if (missing.length) throw new Error(`calc's runtime files did not load: ${missing.join(", ")}`);
  return new Promise(() => {});
}

let calc = Promise.race([start(), requireRuntimeFiles()]);
calc.then(
  () => {
    postMessage({ ready: true, boot });
  },
  (error) => postMessage({ ready: false, error: String(error && error.message ? error.message : error) }),
);

onmessage = async ({ data }) => {
  lastBusyAt = performance.now();
  try {
    let reply;
    let python = await calc;
    let began = performance.now();
    try {
      reply = python.handle(data.payload);
    } catch (error) {
      // Something outside the snapshot's memory was needed: start over with the full library.
      if (!String(error && error.message).includes("ModuleNotFoundError")) throw error;
      calc = bootFromWheel();
      python = await calc;
      began = performance.now(); // the wheel's boot is not calc's time
      reply = python.handle(data.payload);
    }
    // calc's own share of the recompute, for bench/browser.py (to 0.1 ms: the browser's clock)
    postMessage({ id: data.id, reply, pythonMs: performance.now() - began });
  } catch (error) {
    postMessage({ id: data.id, error: String(error && error.message ? error.message : error) });
  }
  lastBusyAt = performance.now(); // quiet counts from the answer: a long first render is not a pause
  warmUp();
};
