"""What a step's peak is compared with a memory budget by, and the largest batch that fits.

On CUDA the figure that runs out is the caching allocator's: `peak_bytes` is the step's
peak as `torch.cuda.max_memory_allocated` counts it (calc.allocated: each tensor's block,
cuBLAS's workspace) where that is worked out — one GPU on CUDA — and the tensors' exact
bytes elsewhere (the CPU, a parallel layout). `largest_batch` finds the largest batch
whose peak fits from the peak itself: the tensors' lines in the batch give a first answer
(exact for the tensors), which is then checked at itself and one more and moved until
peak(answer) ≤ budget < peak(answer + 1).
"""

from __future__ import annotations

from functools import lru_cache

from calc.allocated import allocated_peak, modelled
from calc.peak import batch_lines, tensor_peak_bytes
from calc.setup import MAX_BATCH, TrainingSetup
from calc.shape import ModelShape


def peak_bytes(shape: ModelShape, setup: TrainingSetup) -> int:
    """The step's peak on the fullest GPU as the budget is compared with: allocated blocks
    on one GPU on CUDA, the tensors' bytes otherwise."""
    return allocated_peak(shape, setup) if modelled(setup) else tensor_peak_bytes(shape, setup)


def largest_batch(shape: ModelShape, setup: TrainingSetup, budget_bytes: int) -> int:
    """The largest batch whose peak fits in `budget_bytes`, at most MAX_BATCH; 0 if not
    even one sequence fits. The setup's own batch is not read: worked out once for every
    batch (a reader's edits mostly change it)."""
    if budget_bytes < 0:
        raise ValueError("the memory budget must be positive")
    return _largest_batch(shape, setup.replace(batch=1), budget_bytes)


@lru_cache(maxsize=256)
def _largest_batch(shape: ModelShape, setup: TrainingSetup, budget_bytes: int) -> int:
    def fits(batch: int) -> bool:
        return peak_bytes(shape, setup.replace(batch=batch)) <= budget_bytes

    if not fits(1):
        return 0
    guess = MAX_BATCH
    for line in batch_lines(shape, setup):
        if line.per_sequence > 0:
            guess = min(guess, (budget_bytes - line.constant) // line.per_sequence)
        elif line.constant > budget_bytes:
            guess = 1
    guess = min(max(guess, 1), MAX_BATCH)
    if fits(guess):  # the tensors' answer, or more: search up to the first batch that does not fit
        low, step = guess, 1
        while low + step <= MAX_BATCH and fits(low + step):
            low, step = low + step, step * 2
        high = min(low + step, MAX_BATCH + 1)  # does not fit (or is past the limit)
    else:
        low, high = 1, guess
    while high - low > 1:  # fits(low), not fits(high)
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low
