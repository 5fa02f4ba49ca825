"""The parts of the model an activation row can belong to (Row.category), in the order
pictures stack them, with their labels."""

from __future__ import annotations

CATEGORIES = (
    ("quadratic", "Attention scores/probabilities (∝ s²)"),
    ("attention", "Other attention"),
    ("ffn", "Feed-forward"),
    ("norms", "Norms"),
    ("output", "Output layer"),
    ("inputs", "Token ids and block inputs"),
)
CATEGORY_NAMES = dict(CATEGORIES)
