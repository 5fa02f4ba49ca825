"""TrainingSetup: how the model is trained (batch, precision, optimizer, which accounting)."""

from __future__ import annotations

from dataclasses import dataclass

from calc.errors import FieldError, echo
from calc.shape import check_whole

ACCOUNTINGS = ("seed", "cs336", "autograd", "megatron")
ATTENTION_KINDS = ("explicit", "flash")
CHECKPOINT_KINDS = ("none", "selective", "block")
DTYPES = ("fp32", "bf16")
OPTIMIZERS = ("adamw", "sgd")

MAX_BATCH = 10**6
MAX_PARALLEL = 65536

CHOICES = {
    "accounting": ACCOUNTINGS,
    "attention": ATTENTION_KINDS,
    "checkpoint": CHECKPOINT_KINDS,
    "dtype": DTYPES,
    "optimizer": OPTIMIZERS,
}
"""The allowed values of each of the setup's text fields."""
LAYOUT_SIZES = ("dp", "tp", "pp", "microbatches")
"""The parallel layout's whole-number fields, each from 1 to MAX_PARALLEL."""
ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True)
class TrainingSetup:
    """One training step's setup.

    batch: sequences per step B (per GPU: the micro-batch, when training in parallel);
    accounting: which list of kept tensors to count ("seed", "cs336", "autograd" or
    "megatron"); attention: "explicit" (softmax kept) or "flash" (fused, only output and
    log-sum-exp kept); checkpoint: "none", "selective" (the attention core recomputed:
    nothing quadratic kept) or "block" (each block recomputed in backward); dtype: "fp32",
    or "bf16" autocast with fp32 master weights; optimizer: "adamw" (two fp32 moments) or
    "sgd" (one fp32 momentum buffer).

    Spreading training over GPUs (see calc.parallel): dp data-parallel replicas with ZeRO
    stage `zero`; tp-way tensor parallelism, with sequence parallelism if `sp`; pp pipeline
    stages; `microbatches` micro-batches of `batch` sequences per replica and step.
    """

    batch: int = 1
    accounting: str = "autograd"
    attention: str = "explicit"
    checkpoint: str = "none"
    dtype: str = "fp32"
    optimizer: str = "adamw"
    dp: int = 1
    zero: int = 0
    tp: int = 1
    sp: bool = False
    pp: int = 1
    microbatches: int = 1

    def __post_init__(self):
        check_whole("batch", self.batch, MAX_BATCH)
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"{name} must be one of {', '.join(allowed)}, not {echo(getattr(self, name))}")
        for name in LAYOUT_SIZES:
            check_whole(name, getattr(self, name), MAX_PARALLEL)
        if isinstance(self.zero, bool) or self.zero not in ZERO_STAGES:
            raise FieldError("zero", f"zero must be 0, 1, 2 or 3, not {echo(self.zero)}")
        if not isinstance(self.sp, bool):
            raise FieldError("sp", f"sp must be true or false, not {echo(self.sp)}")
        if self.sp and self.tp == 1:
            raise FieldError("sp", "sp (sequence parallelism) needs tp above 1")

    @property
    def parallel(self) -> bool:
        """Spread over more than one GPU, or in several micro-batches."""
        return (self.dp, self.tp, self.pp, self.microbatches) != (1, 1, 1, 1)

    @property
    def global_batch(self) -> int:
        """Sequences per optimizer step across all replicas: dp · microbatches · batch."""
        return self.dp * self.microbatches * self.batch

    @property
    def bytes_per_value(self) -> int:
        """Bytes of one activation value in the compute dtype (4 for fp32, 2 for bf16)."""
        return 4 if self.dtype == "fp32" else 2

    def replace(self, **changes) -> "TrainingSetup":
        return TrainingSetup(**{**self.__dict__, **changes})  # the fields, as the dataclass stores them

    def as_dict(self) -> dict:
        return dict(self.__dict__)
