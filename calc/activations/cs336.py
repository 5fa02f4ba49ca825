"""The CS336 assignment 1 component list, generalised to any d_ff and any KV heads.

Per block: two RMSNorms, the QKV projections, QKᵀ, softmax, the weighted sum of values,
the output projection, W1, SiLU, W2; then the final norm, the output embedding and the
cross-entropy. Each component counts its output once. As the assignment's list does, this
leaves out W3 and the ⊙ product of SwiGLU. With d_ff = 4·d this is the well-known
L·(16·s·d + 2·h·s²) + s·d + 2·s·V values per sequence.
"""

from __future__ import annotations

from calc.activations.seed import qkv_formula
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values


def cs336_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The assignment's accounting, at the setup's bytes per value."""
    v, n = symbol_values(shape), setup.bytes_per_value
    activation = "SiLU" if shape.ffn == "swiglu" else "GELU"
    rows = (
        row(v, "norms", "RMSNorms (two per block)", f(("L", 2, "s", "d")), n, category="norms", stage="block"),
        row(v, "qkv", "QKV projections", qkv_formula(shape), n, category="attention", stage="block"),
        row(v, "qk", "QKᵀ matrix multiply", f(("L", "h", "s", "s")), n, category="quadratic", stage="block"),
        row(v, "softmax", "Softmax", f(("L", "h", "s", "s")), n, category="quadratic", stage="block"),
        row(v, "weighted-sum", "Weighted sum of values", f(("L", "s", "d")), n, category="attention", stage="block"),
        row(v, "output-projection", "Output projection", f(("L", "s", "d")), n, category="attention", stage="block"),
        row(v, "w1", "W1 matrix multiply", f(("L", "s", "d_ff")), n, category="ffn", stage="block"),
        row(v, "activation", activation, f(("L", "s", "d_ff")), n, category="ffn", stage="block"),
        row(v, "w2", "W2 matrix multiply", f(("L", "s", "d")), n, category="ffn", stage="block"),
        row(v, "final-norm", "Final RMSNorm", f(("s", "d")), n, category="output", stage="head"),
        row(v, "output-embedding", "Output embedding (logits)", f(("s", "V")), n, category="output", stage="head"),
        row(v, "cross-entropy", "Cross-entropy", f(("s", "V")), n, category="output", stage="head"),
    )
    return Table("cs336", "The CS336 accounting", rows, batch=setup.batch)
