// Bind each page's inputs panel to its live tables. This file moves strings only: the
// inputs' values go to calc, calc's HTML comes back into the page. No arithmetic here.
import { patchHTML, patchText } from "./patch.js";
import { calcRuntime } from "./runtime.js";
import { carryLink, carryState, readState, writeState } from "./state.js";

const URL_DELAY_MS = 150;
const DEFERRED_DELAY_MS = 200; // the verdict (it runs the solver) once typing pauses, after the tables
const SLOW_LOAD_MS = 8000;

// The bound page's link query (the reader's own inputs) and how to follow the address bar
// when Back or Forward lands on another entry of the same page.
let page = { query: () => window.location.search.slice(1), followUrl: null };

function bind(form) {
  if (form.dataset.bound) return;
  form.dataset.bound = "true";
  form.dataset.path = window.location.pathname;
  const fields = [...form.querySelectorAll("input[name], select[name], textarea[name]")];
  const byName = Object.fromEntries(fields.map((el) => [el.name, el]));
  const linkFields = (form.dataset.linkFields || "").split(" ").filter(Boolean); // every field a link may set
  const status = form.querySelector(".calc-status");
  // Inline numbers in the prose state facts about the setup the prose names; they stay put.
  const views = [...document.querySelectorAll(".calc-view.calc-live")];
  const requests = views.map((el) => ({
    kind: "view",
    name: el.dataset.view,
    key: el.dataset.key,
    params: JSON.parse(el.dataset.params || "{}"),
  }));
  // The page's own starting inputs (its front matter), then whatever the link carries.
  // `own` is every input the reader set, by the link that opened the page or by hand,
  // whether or not it equals a default: it is written into the address bar and travels
  // with every link, so no page's own start overrides it. Inputs this panel does not show
  // (a layout, passing a one-GPU page) are kept and carried, not applied.
  const defaults = JSON.parse(form.dataset.defaults || "{}");
  const applied = (inputs) => Object.fromEntries(Object.entries(inputs).filter(([name]) => name in byName));
  let own = readState(linkFields);
  let state = { ...defaults, ...applied(own) };
  const shown = views.map(() => null); // the HTML each view shows, as calc last sent it
  // The tables first; the views marked deferred (the verdict card) once the reader pauses.
  const indices = views.map((_, i) => i);
  const now = indices.filter((i) => views[i].dataset.deferred !== "true");
  const later = indices.filter((i) => views[i].dataset.deferred === "true");
  let laterTimer = null;
  // Opened without inputs in the link, the page shows the tables the build made with calc
  // for its defaults: the first live render is the same HTML, so it is not patched in
  // (no layout shift, formulas stay typeset). A test checks built tables equal calc's.
  let asBuilt = Object.keys(applied(own)).length === 0;
  const fromLink = !asBuilt; // the link carries inputs the built tables may not match
  let inFlight = false;
  let queued = false;
  let urlTimer = null;
  let pendingUrl = null;
  let edited = false; // the reader changed an input since the address bar last followed
  let resolved = {}; // calc's text of every input, as last computed
  let fallback = {}; // the page's start inputs that the reader's refuse, left at calc's defaults

  // Writes touch the DOM only when something changed: each write costs a layout.
  const say = (text) => {
    if (status.textContent !== text) status.textContent = text;
  };
  const setText = (el, text) => {
    if (el.textContent !== text) el.textContent = text;
  };

  // Why the tables do not match the inputs: "link" (calc is still computing a link's
  // inputs), "input" (an input is not valid) or "failure" (calc could not compute).
  function markStale(stale, why = "input") {
    for (const view of views) {
      view.classList.toggle("calc-stale", stale);
      if (stale) view.dataset.stale = why;
      else delete view.dataset.stale;
    }
    document.body.classList.toggle("calc-has-stale", stale);
  }

  // The reader's inputs in calc's text where calc has read them (the panel's), as set otherwise.
  function ownText() {
    return Object.fromEntries(Object.entries(own).map(([name, value]) => [name, byName[name] && name in resolved ? resolved[name] : value]));
  }

  // The inputs the reader set (by link or by hand) travel with every link to another page.
  function carry() {
    carryState(inFieldOrder(ownText()));
  }

  // The address bar: calc's short form, less what equals this page's start, plus every
  // start input the reader changed and everything the reader set.
  function linkParams(canonical) {
    const params = {};
    for (const [name, value] of Object.entries(canonical)) if (defaults[name] !== value) params[name] = value;
    for (const [name, value] of Object.entries(defaults)) {
      if (name in resolved && resolved[name] !== value && !(name in fallback)) params[name] = resolved[name];
    }
    return inFieldOrder({ ...params, ...ownText() });
  }

  // A link's inputs in calc's field order, however they were set: a reload writes the same address.
  function inFieldOrder(inputs) {
    return Object.fromEntries(linkFields.filter((name) => name in inputs).map((name) => [name, inputs[name]]));
  }

  // Each field's message element, and the fields whose message is showing: a recompute
  // without errors touches only those (most often none).
  const errorText = Object.fromEntries(fields.map((el) => [el.name, form.querySelector(`#calc-in-${el.name}-error`)]));
  let flagged = [];

  function showErrors(errors) {
    const named = Object.keys(errors).filter((name) => name in byName);
    for (const name of new Set([...flagged, ...named])) {
      const el = byName[name];
      const message = errors[name] || "";
      const invalid = message ? "true" : "false";
      if (el.getAttribute("aria-invalid") !== invalid) el.setAttribute("aria-invalid", invalid);
      setText(errorText[name], message);
      const folded = el.closest("details");
      if (message && folded && !folded.open) folded.open = true; // an error is never folded away
    }
    flagged = named;
    const stale = Object.keys(errors).length > 0;
    markStale(stale);
    if (stale) {
      // An error about a field this panel does not show (a hostile link, say) is still said.
      const elsewhere = Object.entries(errors).filter(([name]) => !(name in byName)).map(([, message]) => message);
      say(`Some inputs are not valid (${elsewhere.length ? elsewhere.join("; ") : "see the messages above"}); the tables show the last good values, marked stale.`);
    }
  }

  // A failure that is not the reader's (calc's own, or the runtime's): said plainly beside
  // the tables, which keep their last good values and are marked stale.
  function showFailure(message) {
    markStale(true, "failure");
    say(`${message} The tables show the last good values, marked stale.`);
  }

  // The address bar follows once typing pauses: rewriting it costs about a millisecond a
  // time (more at the p95), which would sit between every keystroke and its table.
  function flushUrl() {
    clearTimeout(urlTimer);
    urlTimer = null;
    if (pendingUrl && form.isConnected) {  // not after a page swap
      writeState(pendingUrl, edited); // one history entry a pause in typing: Back undoes it
      edited = false;
      carry(); // the links to other pages follow too, once typing pauses
    }
    pendingUrl = null;
  }
  function scheduleUrl(canonical) {
    pendingUrl = canonical;
    clearTimeout(urlTimer);
    urlTimer = setTimeout(flushUrl, URL_DELAY_MS);
  }

  function fill(resolved) {
    const editing = document.activeElement;
    for (const [name, value] of Object.entries(resolved)) {
      const el = byName[name];
      if (el && el !== editing && el.value !== value) el.value = value;
    }
  }

  // Put calc's HTML for the views at `which` into the page (left alone where unchanged, or
  // as built where the page was built for these very inputs).
  function patchViews(which, htmls, asBuiltHere) {
    htmls.forEach((html, k) => {
      const i = which[k];
      if (html === null || html === shown[i]) return; // unchanged: leave the DOM alone
      if (asBuiltHere) {
        shown[i] = html;
        return;
      }
      const output = views[i].querySelector(".calc-output");
      if (!(shown[i] && patchText(output, shown[i], html))) {
        patchHTML(output, html);
        // calc writes formulas as LaTeX (\( … \)): typeset the ones just put back
        if (html.includes("arithmatex") && window.calcRenderMath) window.calcRenderMath(output);
      }
      shown[i] = html;
    });
  }

  const ask = (which) => calcRuntime().request({
    state,
    start: Object.keys(defaults).filter((name) => !(name in own)), // the page's, not the reader's
    views: which.map((i) => requests[i]),
  });

  async function render() {
    clearTimeout(laterTimer);
    if (inFlight) {
      queued = true;
      return;
    }
    inFlight = true;
    const sentAsBuilt = asBuilt;
    asBuilt = false;
    try {
      const reply = await ask(now);
      if (reply.ok) {
        patchViews(now, reply.html, sentAsBuilt);
        resolved = reply.resolved;
        fallback = reply.fallback || {};
        for (const note of form.querySelectorAll("[data-note]")) setText(note, (reply.notes || {})[note.dataset.note] || "");
        fill(reply.resolved);
        scheduleUrl(linkParams(reply.canonical));
        showErrors({});
        say(["Live: change any input and every table on this page follows. The link in the address bar reproduces this view.",
             ...Object.values(fallback)].join(" "));
        document.dispatchEvent(new CustomEvent("calc:rendered"));
        // dimmed until it follows; a page built for these inputs shows its verdict already, and
        // the worker asks for it only once the reader has not typed for a moment, like any other
        if (!sentAsBuilt) for (const i of later) views[i].dataset.pending = "true";
        if (later.length) laterTimer = setTimeout(() => renderLater(sentAsBuilt), DEFERRED_DELAY_MS);
      } else if (reply.internal) {
        showFailure(reply.internal);
      } else {
        showErrors(reply.errors);
      }
    } catch (error) {
      showFailure(`Could not recompute (${error.message}).`);
    } finally {
      inFlight = false;
      if (queued) {
        queued = false;
        render();
      }
    }
  }

  // The deferred views, for the inputs the tables were last computed for; an edit since
  // then recomputes the tables first and asks again.
  async function renderLater(sentAsBuilt) {
    if (inFlight || queued || !form.isConnected) return;
    inFlight = true;
    try {
      const reply = await ask(later);
      if (reply.ok && !queued) {
        patchViews(later, reply.html, sentAsBuilt);
        for (const i of later) delete views[i].dataset.pending;
        document.dispatchEvent(new CustomEvent("calc:verdict"));
      }
    } catch {
      // the tables' own request says what failed; the card keeps its last answer
    } finally {
      inFlight = false;
      if (queued) {
        queued = false;
        render();
      }
    }
  }

  function onEdit(event) {
    const el = event.target;
    if (!el.name || !(el.name in byName)) return;
    state[el.name] = el.value;
    if (linkFields.includes(el.name)) own[el.name] = el.value;
    edited = true;
    // choosing a preset replaces the fields it sets, a card drops a typed budget (calc names them in data-clears)
    for (const name of (el.dataset.clears || "").split(" ").filter(Boolean)) {
      delete state[name];
      delete own[name];
    }
    render();
  }

  form.addEventListener("input", onEdit);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("click", async (event) => {
    const action = event.target.closest("button[data-action]")?.dataset.action;
    if (action === "reset") {
      state = { ...defaults };
      own = {};
      edited = true;
      render();
    } else if (action === "copy") {
      flushUrl();
      try {
        await navigator.clipboard.writeText(window.location.href);
        say("Link copied: it opens this page with these inputs.");
      } catch {
        say(`Copy this link: ${window.location.href}`);
      }
    }
  });

  // Back or Forward to another entry of this page: its address is the state again.
  function followUrl() {
    clearTimeout(urlTimer);
    pendingUrl = null;
    own = readState(linkFields);
    state = { ...defaults, ...applied(own) };
    fill(state);
    edited = false; // the address bar already says this; it is not a new entry
    carry();
    render();
  }
  page = { query: () => new URLSearchParams(inFieldOrder(ownText())).toString(), followUrl, form };

  // A link's inputs are shown at once (calc's field list is in the page); its tables are
  // marked until calc has computed them.
  fill(applied(own));
  carry();
  say(fromLink ? "Loading calc in your browser… the tables below show this page's defaults until calc has computed them for your link."
               : "Loading calc in your browser… the tables below are already correct for these inputs.");
  markStale(fromLink, "link");
  const slow = setTimeout(() => {
    say("calc is taking longer than usual to load; the tables show what the page was built with" +
        (fromLink ? ", not your link's inputs (marked stale)." : "."));
  }, SLOW_LOAD_MS);
  calcRuntime().ready.finally(() => clearTimeout(slow));
  calcRuntime().ready.then(
    () => {
      form.querySelector("fieldset.calc-all").disabled = false;
      form.classList.add("calc-ready");
      render();
    },
    (error) => {
      say(`Live editing is unavailable here (${error.message}). The tables show this page's defaults` +
          (fromLink ? ", not your link's inputs (marked stale)." : " and stay correct for them."));
      markStale(fromLink, "failure");
    },
  );
}

// The height of the verdict card, which stays under the header: links' targets land below it.
function measureVerdict() {
  const card = document.querySelector(".calc-verdict");
  document.documentElement.style.setProperty("--calc-verdict-height", card ? `${card.offsetHeight}px` : "0px");
}

// A link to a table's row shows the row under its table's header: the page scrolls to the
// table's box (which fits the screen), the box to the row, never sideways. On a phone the
// box does not scroll down (the page does): the row comes under the header and the card,
// with one row above it.
function showLinkedRow() {
  const id = decodeURIComponent(window.location.hash.slice(1));
  const row = id && document.getElementById(id);
  const box = row && row.matches("tr") && row.closest(".calc-table");
  if (!box) return;
  measureVerdict();
  const header = document.querySelector(".md-header");
  const card = document.querySelector(".calc-verdict");
  const below = (header ? header.getBoundingClientRect().bottom : 0) + (card ? card.offsetHeight : 0);
  box.scrollLeft = 0;
  if (box.scrollHeight <= box.clientHeight) {
    window.scrollBy(0, row.getBoundingClientRect().top - below - row.offsetHeight);
    return;
  }
  window.scrollBy(0, box.getBoundingClientRect().top - below);
  const head = box.querySelector("thead");
  const rowTop = row.getBoundingClientRect().top - box.getBoundingClientRect().top + box.scrollTop;
  box.scrollTop = Math.max(0, rowTop - (head ? head.offsetHeight : 0) - row.offsetHeight);
}

// The theme's search is a dialog without a name; screen readers announce it as "Search".
function nameTheSearchDialog() {
  const dialog = document.querySelector(".md-search[role='dialog']");
  if (dialog && !dialog.hasAttribute("aria-label")) dialog.setAttribute("aria-label", "Search");
}

// mkdocs-material swaps pages without reloading (instant navigation): bind on every swap.
// A page without live tables passes the inputs its link brought on to its own links.
document$.subscribe(() => {
  nameTheSearchDialog();
  const form = document.querySelector("form.calc-inputs");
  measureVerdict();
  if (form) bind(form);
  else {
    page = { query: () => window.location.search.slice(1), followUrl: null };
    carryState(Object.fromEntries(new URLSearchParams(window.location.search)));
  }
  requestAnimationFrame(showLinkedRow);
});
window.addEventListener("hashchange", showLinkedRow);
window.addEventListener("resize", measureVerdict);
document.addEventListener("calc:verdict", measureVerdict);

// Back and Forward between entries of the same page (the reader's edits) recompute from the
// address bar; between pages the theme swaps the page, which binds anew.
window.addEventListener("popstate", () => {
  if (page.followUrl && page.form.isConnected && page.form.dataset.path === window.location.pathname) page.followUrl();
});

// Search results are drawn as the reader types: each carries the inputs as it is followed.
for (const type of ["mousedown", "click", "keydown"]) {
  document.addEventListener(type, (event) => {
    const a = event.target.closest?.(".md-search-result a[href]");
    if (a) carryLink(a, page.query());
  }, true);
}
