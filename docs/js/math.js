// Render the formulas (pymdownx.arithmatex, generic mode) with the KaTeX shipped in the
// site. Subscribed to document$ so it runs after every instant-navigation page swap; the
// live widgets call calcRenderMath on a table calc has just redrawn.
const MATH_OPTIONS = {
  delimiters: [
    { left: "\\(", right: "\\)", display: false },
    { left: "\\[", right: "\\]", display: true },
  ],
  ignoredClasses: ["calc-input"],
  throwOnError: false,
};

window.calcRenderMath = (element) => renderMathInElement(element, MATH_OPTIONS);

document$.subscribe(() => window.calcRenderMath(document.body));
