// One calc runtime per visit: a module Web Worker, started on the first page that has
// live tables and kept across instant-navigation page swaps.
let runtime = null;

const LOAD_TIMEOUT_MS = 120_000;

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
    try {
      worker = new Worker(new URL("./calc-worker.js", import.meta.url), { type: "module" });
    } catch (error) {
      reject(error);
      return;
    }
    worker.onerror = (event) => reject(new Error(event.message || "the calc worker failed to start"));
    setTimeout(() => reject(new Error("calc did not finish loading within two minutes")), LOAD_TIMEOUT_MS);
    worker.onmessage = ({ data }) => {
      if ("ready" in data) {
        data.ready ? resolve() : reject(new Error(data.error));
        return;
      }
      const call = pending.get(data.id);
      pending.delete(data.id);
      if (!call) return;
      data.error ? call.reject(new Error(data.error)) : call.resolve(JSON.parse(data.reply));
    };
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
