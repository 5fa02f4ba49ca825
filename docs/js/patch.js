// Put calc's new HTML into the page by changing only what differs, so that a recompute
// re-lays-out a few table cells instead of whole tables.

const TAG = /(<[^>]*>)/; // calc's HTML: tags never contain a raw ">" (calc escapes attributes)
const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'" };

// The usual recompute changes numbers and nothing else. When `html` has exactly the tags of
// `shown` (what the target was last given), set the text nodes that differ and parse
// nothing. Returns false, having changed nothing, when that does not hold.
export function patchText(target, shown, html) {
  const before = shown.split(TAG);
  const after = html.split(TAG);
  if (before.length !== after.length) return false;
  const changes = new Map(); // index among non-empty text pieces -> new text
  let texts = 0;
  for (let i = 0; i < after.length; i++) {
    if (i % 2 === 1) {
      if (before[i] !== after[i]) return false; // a tag or an attribute changed
    } else if (before[i] || after[i]) {
      if (!before[i] || !after[i]) return false; // a text node would appear or vanish
      if (before[i] !== after[i]) changes.set(texts, [decode(before[i]), decode(after[i])]);
      texts++;
    }
  }
  const nodes = [];
  const walker = document.createTreeWalker(target, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) nodes.push(walker.currentNode);
  if (nodes.length !== texts) return false; // the page's nodes are not the pieces we think
  for (const [index, [old]] of changes) if (nodes[index].data !== old) return false;
  for (const [index, [, text]] of changes) nodes[index].data = text; // text, never markup
  return true;
}

function decode(text) {
  return text.replace(/&(?:amp|lt|gt|quot|#x27);/g, (entity) => ENTITIES[entity]);
}

// Make `target`'s children match those parsed from `html`.
export function patchHTML(target, html) {
  const template = document.createElement("template");
  template.innerHTML = html; // calc's HTML: calc escapes every string in it
  patchChildren(target, template.content);
}

function patchChildren(current, wanted) {
  const have = [...current.childNodes];
  const want = [...wanted.childNodes];
  for (let i = 0; i < want.length; i++) {
    const mine = have[i];
    const theirs = want[i];
    if (!mine) {
      current.appendChild(theirs);
    } else if (!sameKind(mine, theirs)) {
      current.replaceChild(theirs, mine);
    } else if (mine.nodeType === Node.TEXT_NODE) {
      if (mine.data !== theirs.data) mine.data = theirs.data;
    } else {
      patchAttributes(mine, theirs);
      patchChildren(mine, theirs);
    }
  }
  for (let i = want.length; i < have.length; i++) current.removeChild(have[i]);
}

function sameKind(a, b) {
  return a.nodeType === b.nodeType && a.nodeName === b.nodeName;
}

function patchAttributes(mine, theirs) {
  for (const { name, value } of theirs.attributes) {
    if (mine.getAttribute(name) !== value) mine.setAttribute(name, value);
  }
  for (const { name } of [...mine.attributes]) {
    if (!theirs.hasAttribute(name)) mine.removeAttribute(name);
  }
}
