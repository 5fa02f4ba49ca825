// Put calc's new HTML into the page by changing only what differs, so that a recompute
// re-lays-out a few table cells instead of whole tables.

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
