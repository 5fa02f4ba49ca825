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

// Write calc's canonical (shortest) form of the inputs into the address bar: a new history
// entry for a reader's edit (so Back undoes it), the same entry otherwise.
export function writeState(canonical, edited = false) {
  const query = new URLSearchParams(canonical).toString();
  const url = window.location.pathname + (query ? `?${query}` : "") + window.location.hash;
  if (url !== window.location.pathname + window.location.search + window.location.hash) {
    if (edited) history.pushState(history.state, "", url);
    else history.replaceState(history.state, "", url);
  }
}

// Links to the site's other pages carry the inputs the reader set, so the next page of the
// derivation opens with the same model (and a copied link still reproduces). calc's own
// links (inside its views) carry their setups already and are left alone.
export function carryState(inputs) {
  const query = new URLSearchParams(inputs).toString();
  for (const a of document.querySelectorAll(".md-content a[href], .md-nav a[href], .md-footer a[href], .md-tabs a[href], .md-header a[href]")) {
    if (!a.closest(".calc-view")) carryLink(a, query);
  }
}

// One link to a page of the site, given the query `query` (its original href remembered);
// links elsewhere, and links to a place on this very page, are left alone.
export function carryLink(a, query) {
  const base = a.dataset.calcHref ?? a.getAttribute("href");
  const url = new URL(base, window.location.href);
  const page = url.pathname.endsWith("/") || url.pathname.endsWith(".html");
  if (url.origin !== window.location.origin || !page || (url.pathname === window.location.pathname && url.hash)) return;
  url.search = query;
  const href = url.pathname + url.search + url.hash;
  if (a.getAttribute("href") === href) return; // each write costs a style recalculation
  a.dataset.calcHref = base;
  a.setAttribute("href", href);
}
