"""TrainingSetup: how the model is trained (batch, precision, optimizer, which accounting)."""

from __future__ import annotations

from dataclasses import dataclass, fields

ACCOUNTINGS = ("seed", "cs336", "autograd")
ATTENTION_KINDS = ("explicit", "flash")
CHECKPOINT_KINDS = ("none", "block")
DTYPES = ("fp32", "bf16")
OPTIMIZERS = ("adamw", "sgd")

MAX_BATCH = 10**6

_CHOICES = {
    "accounting": ACCOUNTINGS,
    "attention": ATTENTION_KINDS,
    "checkpoint": CHECKPOINT_KINDS,
    "dtype": DTYPES,
    "optimizer": OPTIMIZERS,
}


@dataclass(frozen=True)
class TrainingSetup:
    """One training step's setup.

    batch: sequences per step B; accounting: which list of kept tensors to count ("seed",
    "cs336" or "autograd"); attention: "explicit" (softmax kept) or "flash" (fused, only
    output and log-sum-exp kept); checkpoint: "none" or "block" (each block recomputed in
    backward); dtype: "fp32", or "bf16" autocast with fp32 master weights; optimizer:
    "adamw" (two fp32 moments) or "sgd" (one fp32 momentum buffer).
    """

    batch: int = 1
    accounting: str = "autograd"
    attention: str = "explicit"
    checkpoint: str = "none"
    dtype: str = "fp32"
    optimizer: str = "adamw"

    def __post_init__(self):
        if isinstance(self.batch, bool) or not isinstance(self.batch, int):
            raise ValueError(f"batch must be a whole number, not {self.batch!r}")
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"batch must be between 1 and {MAX_BATCH:,}, not {self.batch:,}")
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")

    @property
    def bytes_per_value(self) -> int:
        """Bytes of one activation value in the compute dtype (4 for fp32, 2 for bf16)."""
        return 4 if self.dtype == "fp32" else 2

    def replace(self, **changes) -> "TrainingSetup":
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return TrainingSetup(**values)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
