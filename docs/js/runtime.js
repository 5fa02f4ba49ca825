// One calc runtime per visit: a module Web Worker, started on the first page that has
// live tables and kept across instant-navigation page swaps.
let runtime = null;

const LOAD_TIMEOUT_MS = 60_000; // the page says sooner that loading is slow (widgets.js)

// The worker's boot steps in ms since this page's navigation (for bench/browser.py).
function timesSincePageStart(boot) {
  return Object.fromEntries(Object.entries(boot).map(([step, at]) => [step, typeof at === "number" ? at - performance.timeOrigin : at]));
}

export function calcRuntime() {
  if (runtime) return runtime;
  let worker;
  const pending = new Map();
  let nextId = 0;
  const ready = new Promise((resolve, reject) => {
    if (typeof WebAssembly !== "object" || typeof Worker !== "function") {
      reject(new Error("this browser has no WebAssembly or Web Workers"));
      return;
    }
    const early = window.calcEarlyWorker;
    try {
      worker = early ? early.worker : new Worker(new URL("./calc-worker.js", import.meta.url), { type: "module" });
    } catch (error) {
      reject(error);
      return;
    }
    const onError = (message) => reject(new Error(message || "the calc worker failed to start"));
    const onMessage = (data) => {
      if ("ready" in data) {
        if (data.boot) window.calcBoot = timesSincePageStart(data.boot);
        data.ready ? resolve() : onError(data.error);
        return;
      }
      window.calcPythonMs = data.pythonMs; // the last reply's time in calc's Python (for bench/browser.py)
      const call = pending.get(data.id);
      pending.delete(data.id);
      if (!call) return;
      data.error ? call.reject(new Error(data.error)) : call.resolve(JSON.parse(data.reply));
    };
    worker.onerror = (event) => onError(event.message);
    worker.onmessage = ({ data }) => onMessage(data);
    if (early) early.said.forEach(onMessage); // what the early worker said before we listened
    setTimeout(() => reject(new Error("calc did not finish loading within a minute")), LOAD_TIMEOUT_MS);
  });
  // Ask calc to render; resolves with calc's reply object.
  function request(payload) {
    return ready.then(
      () =>
        new Promise((resolve, reject) => {
          const id = nextId++;
          pending.set(id, { resolve, reject });
          worker.postMessage({ id, payload: JSON.stringify(payload) });
        }),
    );
  }
  runtime = { ready, request };
  return runtime;
}
