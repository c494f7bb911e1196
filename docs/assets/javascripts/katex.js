// Typeset the math that pymdownx.arithmatex marked (its generic mode writes \( \) and \[ \]),
// with the KaTeX vendored in assets/katex/: nothing is fetched from the network.
function typesetMath() {
  for (const element of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
    });
  }
}

if (typeof document$ !== "undefined") {
  document$.subscribe(typesetMath);    // Material's page-load signal (also for instant loading)
} else {
  document.addEventListener("DOMContentLoaded", typesetMath);
}
