// Formulas in the prose are typeset when the site is built (hooks/typeset.mjs). Only calc's
// own formulas (the reference page's table, the per-block formula) arrive as LaTeX, and
// calc may redraw them: for those, and only on pages that have them, this loads the KaTeX
// shipped with the site and typesets them. Other pages load no KaTeX script at all.
const KATEX = new URL("../vendor/katex/", document.currentScript.src);
const RAW = ".arithmatex.calc-math, .arithmatex.calc-formula";
const MATH_OPTIONS = {
  delimiters: [
    { left: "\\(", right: "\\)", display: false },
    { left: "\\[", right: "\\]", display: true },
  ],
  throwOnError: false,
};

let katexLoaded = null;
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
}
function loadKatex() {
  katexLoaded ??= loadScript(new URL("katex.min.js", KATEX).href).then(() =>
    loadScript(new URL("contrib/auto-render.min.js", KATEX).href),
  );
  return katexLoaded;
}

// Typeset calc's formulas inside `element` (a redrawn table, or the page).
window.calcRenderMath = (element) => {
  if (!element.querySelector(RAW)) return Promise.resolve();
  return loadKatex().then(
    () => element.querySelectorAll(RAW).forEach((math) => renderMathInElement(math, MATH_OPTIONS)),
    () => {}, // the LaTeX source stays readable
  );
};

document$.subscribe(() => window.calcRenderMath(document.body));
