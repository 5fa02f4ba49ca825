// The page's inputs live in the URL's query string, in calc's own field names, so a
// copied link reproduces the view. Only fields calc's form knows are read.

export function readState(fieldNames) {
  const params = new URLSearchParams(window.location.search);
  const state = {};
  for (const name of fieldNames) {
    if (params.has(name)) state[name] = params.get(name);
  }
  return state;
}

// Write calc's canonical (shortest) form of the inputs into the address bar.
export function writeState(canonical) {
  const query = new URLSearchParams(canonical).toString();
  const url = window.location.pathname + (query ? `?${query}` : "") + window.location.hash;
  if (url !== window.location.pathname + window.location.search + window.location.hash) {
    history.replaceState(history.state, "", url);
  }
}
