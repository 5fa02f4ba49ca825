"""Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer
Models", section 4: the activations one GPT block keeps, under the paper's assumptions —
LayerNorm, GELU MLP, dropout after attention's softmax and after both projections with
1-byte masks, 16-bit activations (the setup's dtype bytes here), embedding and output
layer not counted.

Per layer and sequence, with h = d, a = heads: attention 11·s·h + 5·a·s² bytes, MLP
19·s·h (d_ff = 4h), two LayerNorms 4·s·h: s·h·(34 + 5·a·s/h) in all. Tensor parallelism
of size t splits all but 10·s·h of it; sequence parallelism splits that too; selective
recomputation drops the 5·a·s² of the attention core; full recomputation keeps the
layer's input alone.
"""

from __future__ import annotations

from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table, f, row, symbol_values

MASK = 1


def megatron_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    v = {**symbol_values(shape), "t": setup.tp}
    a = setup.bytes_per_value
    split = ("/t",) if setup.tp > 1 else ()
    seq = split if setup.sp else ()  # the parts only sequence parallelism splits

    def r(key, name, terms, nbytes, category):
        return row(v, key, name, f(terms), nbytes, stage="block", category=category)

    if setup.checkpoint == "block":
        rows = [r("layer-input", "Layer input (everything else recomputed)", ("L", "s", "d", *seq), a, "inputs")]
        return Table("megatron", "Korthikanti et al. (2022), per layer", tuple(rows), batch=setup.batch,
                     notes=("Full recomputation: each layer keeps its 16-bit input, 2·s·b·h bytes.",))
    rows = [
        r("layernorm-inputs", "LayerNorm inputs (two)", ("L", 2, "s", "d", *seq), a, "norms"),
        r("qkv-input", "QKV projection input", ("L", "s", "d", *seq), a, "attention"),
        r("qk", "Q and K (for QKᵀ)", ("L", 2, "s", "d", *split), a, "attention"),
    ]
    if setup.checkpoint != "selective":
        rows += [
            r("softmax-output", "Softmax output", ("L", "h", "s", "s", *split), a, "quadratic"),
            r("softmax-dropout-mask", "Softmax dropout mask", ("L", "h", "s", "s", *split), MASK, "quadratic"),
            r("dropout-output", "Softmax dropout output (for ·V)", ("L", "h", "s", "s", *split), a, "quadratic"),
        ]
    rows += [
        r("v", "V", ("L", "s", "d", *split), a, "attention"),
        r("projection-input", "Output projection input", ("L", "s", "d", *split), a, "attention"),
        r("attention-dropout-mask", "Attention dropout mask", ("L", "s", "d", *seq), MASK, "attention"),
        r("mlp-input", "MLP input (first linear)", ("L", "s", "d", *seq), a, "ffn"),
        r("gelu-input", "GELU input", ("L", "s", "d_ff", *split), a, "ffn"),
        r("fc2-input", "Second linear input", ("L", "s", "d_ff", *split), a, "ffn"),
        r("mlp-dropout-mask", "MLP dropout mask", ("L", "s", "d", *seq), MASK, "ffn"),
    ]
    return Table("megatron", "Korthikanti et al. (2022), per layer", tuple(rows), batch=setup.batch,
                 notes=("The paper's per-layer count: embedding, output layer and loss are not included.",))
