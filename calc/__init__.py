"""calc: the exact memory of training a transformer, in integers.

Standard library only; runs on CPython 3.11+ and in Pyodide.
"""

from calc.activations import activation_table
from calc.fixed import fixed_table
from calc.parameters import parameter_count, parameter_table
from calc.fit import largest_batch, peak_bytes
from calc.peak import moments_table
from calc.presets import DEFAULT_PRESET, PRESETS, preset
from calc.report import summary, summary_table
from calc.setup import TrainingSetup
from calc.shape import ModelShape

__all__ = [
    "ModelShape", "TrainingSetup", "PRESETS", "DEFAULT_PRESET", "preset",
    "parameter_table", "parameter_count", "fixed_table", "activation_table",
    "peak_bytes", "largest_batch", "moments_table", "summary", "summary_table",
]
__version__ = "0.1.0"
