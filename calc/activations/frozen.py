"""What autograd stops keeping when full fine-tuning freezes the token embedding and the
first decoder layers (calc.frozen says why): full training's rows, less those.

Without checkpointing: no token ids; the L − k trainable layers keep their rows (L_t);
the first of them keeps its attention norm's x·rms but not its input and inverse RMS; with
no trainable layer, no block row at all (the RoPE tables included) and the final norm
keeps only x·rms. With checkpointing only the token ids go: every layer keeps its input.
"""

from __future__ import annotations

from calc.table import f, row, symbol_values

FIRST_NORM = ("norm1-input", "norm1-rms")
"""The attention norm's rows that need the layer's input to need a gradient."""
FINAL_NORM = ("final-norm-input", "final-norm-rms")


def frozen_rows(rows, shape, setup) -> tuple:
    """Full training's rows (per sequence) with the frozen part's taken out."""
    k, layers = setup.frozen_blocks, shape.layers
    trainable = layers - k
    values = symbol_values(shape) | {"L_t": trainable, "L_t1": max(trainable - 1, 0), "L_1": layers - 1}
    out = []
    for r in rows:
        if r.key == "token-ids" and setup.freeze_embeddings:
            continue
        if setup.checkpoint == "block" or r.stage != "block":
            if trainable == 0 and setup.checkpoint != "block" and r.key in FINAL_NORM:
                continue
            out.append(r)
            continue
        if trainable == 0:
            continue
        if r.per_step:
            out.append(r)
            continue
        first = r.key in FIRST_NORM and setup.freeze_embeddings
        if first and trainable == 1:
            continue
        after = ("L_t1" if k else "L_1") if first else ("L_t" if k else "L")
        terms = tuple(tuple(after if factor == "L" else factor for factor in term) for term in r.formula.terms)
        name = r.name + (", in the trainable layers after the first" if first else "")
        out.append(row(values, r.key, name, f(*terms), r.bytes_per_value, per_step=r.per_step, note=r.note,
                       stage=r.stage, category=r.category, at_batch_one=r.at_batch_one))
    return tuple(out)
