// Render the formulas (pymdownx.arithmatex, generic mode) with the KaTeX shipped in the
// site. Subscribed to document$ so it runs after every instant-navigation page swap.
document$.subscribe(() => {
  renderMathInElement(document.body, {
    delimiters: [
      { left: "\\(", right: "\\)", display: false },
      { left: "\\[", right: "\\]", display: true },
    ],
    ignoredClasses: ["calc-input"],
    throwOnError: false,
  });
});
