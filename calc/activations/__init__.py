"""Activation accountings, one module each: seed, cs336, autograd."""

from __future__ import annotations

from functools import lru_cache

from calc.activations.autograd import autograd_table
from calc.activations.cs336 import cs336_table
from calc.activations.seed import seed_table
from calc.setup import TrainingSetup
from calc.shape import ModelShape
from calc.table import Table

_TABLES = {"seed": seed_table, "cs336": cs336_table, "autograd": autograd_table}


@lru_cache(maxsize=512)
def activation_table(shape: ModelShape, setup: TrainingSetup) -> Table:
    """The activation rows of `setup.accounting`, per batch element, with the batch set."""
    return _TABLES[setup.accounting](shape, setup)
