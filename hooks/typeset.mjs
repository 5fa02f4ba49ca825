// Typeset the prose's formulas at build time with KaTeX (the npm package the site ships),
// so that pages show them at first paint, with JavaScript off, and load no KaTeX script.
// pymdownx.arithmatex (generic mode) writes them as <span class="arithmatex">\( … \)</span>
// and <div class="arithmatex">\[ … \]</div>. Formulas inside calc's live tables carry a
// second class (calc-math, calc-formula) and are left for the browser, because calc
// redraws them there (docs/js/math.js).
//
//   node hooks/typeset.mjs <page.html>...
import { readFileSync, writeFileSync } from "node:fs";
import katex from "katex";

const PROSE_MATH = /<(span|div) class="arithmatex">\\([([])([\s\S]*?)\\[)\]]<\/\1>/g;
const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#39;": "'", "&#x27;": "'" };
const decode = (text) => text.replace(/&(?:amp|lt|gt|quot|#39|#x27);/g, (entity) => ENTITIES[entity]);

let count = 0;
for (const file of process.argv.slice(2)) {
  const page = readFileSync(file, "utf8");
  const typeset = page.replace(PROSE_MATH, (_, tag, open, tex) => {
    count++;
    const html = katex.renderToString(decode(tex), { displayMode: open === "[", throwOnError: false });
    // a display formula wider than a phone scrolls sideways: keyboards can focus it to scroll
    return tag === "div" ? `<div class="arithmatex" tabindex="0">${html}</div>` : `<span class="arithmatex">${html}</span>`;
  });
  if (typeset !== page) writeFileSync(file, typeset);
}
console.log(`${count} formulas typeset`);
