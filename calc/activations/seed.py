"""The seed's own list of kept tensors, reproduced exactly (and so are its slips).

The seed counts, per block, the attention input, Q/K/V, the scores and the probabilities,
the attention output, the FFN input, W1 and W3 outputs, the SiLU product and the W2 output;
then the token embeddings, the final norm and the logits. It prints 83,558,400 values per
block, 4,065,543,168 values in all, and 16,262,172,672 bytes at 4 bytes a value.
"""

from __future__ import annotations

from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values


SEED_PRINTED = {
    "claim_gb": "2.265",  # "Approximately: 2.265 GB per batch element"
    "block_values": 83_558_400,
    "total_values": 4_065_543_168,
    "total_bytes": 16_262_172_672,
    "total_as_printed": "15.15 GB",  # 16,262,172,672 bytes is 15.15 GiB (and 16.26 GB)
    "values_per_position": 553_385,  # printed as 2.265 × 10^9 / (1024 × 4)
}
"""Figures exactly as the seed question prints them."""


def qkv_formula(shape: ModelShape):
    """Values of Q, K and V per layer: 3·s·d, or s·d + 2·s·h_kv·d_h with fewer KV heads."""
    if shape.kv_heads == shape.heads:
        return f(("L", 3, "s", "d"))
    return f(("L", "s", "d"), ("L", 2, "s", "h_kv", "d_h"))


def seed_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The seed's accounting: every intermediate it lists, at the setup's bytes per value."""
    v, n = symbol_values(shape), setup.bytes_per_value
    swiglu = shape.ffn == "swiglu"
    rows = [
        row(v, "input", "Token embeddings (input)", f(("s", "d")), n, category="inputs", stage="embedding"),
        row(v, "attention-input", "Attention input", f(("L", "s", "d")), n, category="attention", stage="block"),
        row(v, "qkv", "Q, K, V after projection", qkv_formula(shape), n, category="attention", stage="block"),
        row(v, "scores", "Attention scores", f(("L", "h", "s", "s")), n, category="quadratic", stage="block"),
        row(v, "probabilities", "Attention probabilities", f(("L", "h", "s", "s")), n, category="quadratic", stage="block"),
        row(v, "attention-output", "Attention output", f(("L", "s", "d")), n, category="attention", stage="block"),
        row(v, "ffn-input", "FFN input", f(("L", "s", "d")), n, category="ffn", stage="block"),
        row(v, "w1-output", "W1 output (gate)" if swiglu else "W1 output", f(("L", "s", "d_ff")), n, category="ffn", stage="block"),
    ]
    if swiglu:
        rows.append(row(v, "w3-output", "W3 output (up)", f(("L", "s", "d_ff")), n, category="ffn", stage="block"))
    rows += [
        row(v, "activation-output", "After SiLU and multiply" if swiglu else "After GELU", f(("L", "s", "d_ff")), n, category="ffn", stage="block"),
        row(v, "w2-output", "W2 output", f(("L", "s", "d")), n, category="ffn", stage="block"),
        row(v, "final-norm", "Final RMSNorm", f(("s", "d")), n, category="output", stage="head"),
        row(v, "logits", "Logits", f(("s", "V")), n, category="output", stage="head"),
    ]
    return Table("seed", "The seed's accounting", tuple(rows), batch=setup.batch)
