"""Activation accountings, one module each: seed, cs336, autograd, megatron."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from calc.activations.autograd import autograd_table
from calc.activations.cs336 import cs336_table
from calc.activations.megatron import megatron_table
from calc.activations.seed import seed_table
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table

_TABLES = {"seed": seed_table, "cs336": cs336_table, "autograd": autograd_table, "megatron": megatron_table}


def activation_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The activation rows of `setup.accounting`, per batch element, with the batch set.

    Selective recomputation (checkpoint="selective") recomputes the attention core in
    backward, so the quadratic rows (scores, probabilities, mask) are not kept.
    """
    if setup.batch == 1:
        return _per_sequence_table(shape, setup)
    # the rows are per sequence: one table serves every batch size
    return replace(_per_sequence_table(shape, setup.replace(batch=1)), batch=setup.batch)


@lru_cache(maxsize=512)
def _per_sequence_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    table = _TABLES[setup.accounting](shape, setup)
    if setup.checkpoint == "selective" and setup.accounting != "megatron":
        kept = tuple(r for r in table.rows if r.category != "quadratic")
        table = replace(table, rows=kept, notes=table.notes + ("Selective recomputation: the attention core is recomputed.",))
    return table


def bytes_per_block(shape: ModelShape, table: Table, batch: int = 1) -> int:
    """Bytes one transformer block keeps for `batch` sequences: the blocks' rows (each
    carries the factor L) divided by the layers. Rows kept once per step, such as the
    shared causal mask, are left out."""
    return sum(r.bytes_for_batch(batch) for r in table.rows if r.stage == "block" and not r.per_step) // shape.layers


def quadratic_bytes(table: Table, batch: int = 1) -> int:
    """Bytes of the rows that grow with the square of the context (category "quadratic")."""
    return sum(r.bytes_for_batch(batch) for r in table.rows if r.category == "quadratic")
