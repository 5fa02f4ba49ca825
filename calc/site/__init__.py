"""The site adapter: calc's answers as HTML and SVG, the inputs panel, and the one entry
point the browser calls. It renders what the engine (the rest of calc) computes and
computes nothing of its own."""
