"""A live-tensor timeline of whole training steps on the CPU: the peak of allocated bytes
that calc's moments model must reproduce (issue: the whole step's peak).

    python -m validation.timeline    # the reference model at small shapes: measured peak and calc's

Every op's outputs are recorded by storage (a TorchDispatchMode); each storage is held by
a weak reference, so it leaves the count the moment PyTorch frees it. After every op the
live bytes are summed; the parameters, buffers, inputs and optimizer state, alive before
the step, are added once (views of them, such as W.T, are not new storage). The step is the second one (optimizer state allocated), with
zero_grad(set_to_none=True). What one op allocates and frees inside itself (a kernel's
workspace) is not seen; CUDA's max_memory_allocated() would see it.

Not yet used by calc's tests: calc's moments are a stated model, and this tool shows where
they miss. Seen at these small shapes (fp32, explicit attention): at batch 4 the peak is
inside log-softmax's backward, where calc's moment also counts the head's weight gradient,
not yet made; at batch 1 AdamW's step is the peak with foreach (its sqrt temporaries) and
for-loop, and a block's backward with fused, below calc's block moment.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from validation.reference_model import Transformer

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


class LiveBytes(TorchDispatchMode):
    """The bytes of storages made since the mode started and not yet freed, after every op;
    the most of them, and the op it came after."""

    def __init__(self, held=()):
        super().__init__()
        self.held = {t.untyped_storage().data_ptr() for t in held}  # alive before; views of them are not new
        self.refs: dict[tuple, tuple] = {}
        self.ops = 0
        self.peak = 0
        self.peak_op = ""

    def live(self) -> int:
        for key in [k for k, (ref, _) in self.refs.items() if ref.expired()]:
            del self.refs[key]
        return sum(n for _, n in self.refs.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = (storage.data_ptr(), storage.nbytes())
                if storage.data_ptr() in self.held:
                    continue
                if storage.nbytes() and (key not in self.refs or self.refs[key][0].expired()):
                    self.refs[key] = (StorageWeakRef(storage), storage.nbytes())
        self.ops += 1
        now = self.live()
        if now > self.peak:
            self.peak, self.peak_op = now, f"op {self.ops}, {func}"
        return out


def step_peak(cfg: dict, batch: int, optimizer: str = "foreach", dtype: str = "fp32", attention: str = "explicit",
              checkpoint: str = "none") -> tuple[int, str]:
    """(peak bytes of the step, the op after which it was reached) for the reference model
    with AdamW (`optimizer`: "for-loop", "foreach" or "fused")."""
    torch.manual_seed(0)
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=optimizer == "foreach", fused=optimizer == "fused")
    ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step():
        with autocast:
            loss = model(ids, targets, attention=attention, checkpoint=checkpoint)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # the optimizer's state exists from here on
    held = [*model.parameters(), *model.buffers(), ids, targets,
            *(t for state in opt.state.values() for t in state.values() if isinstance(t, torch.Tensor))]
    held_bytes = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in held}.values())
    mode = LiveBytes(held)
    with mode:
        step()
    return held_bytes + mode.peak, mode.peak_op


def main() -> int:
    cfg = dict(vocab=64, context=16, layers=2, d_model=32, heads=4, kv_heads=4, d_ff=48, ffn="swiglu", norm="rmsnorm",
               bias=False, positions="rope", tied=False)
    for batch in (1, 4):
        for optimizer in ("for-loop", "foreach", "fused"):
            peak, where = step_peak(cfg, batch, optimizer)
            print(f"B={batch} AdamW {optimizer:8}: peak {peak:,} bytes, after {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
