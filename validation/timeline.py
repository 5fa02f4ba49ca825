"""A live-tensor timeline of whole training steps on the CPU: the peak of allocated bytes
that calc's moments model must reproduce (issue: the whole step's peak).

    python -m validation.timeline           # the reference model at small shapes: write timeline.json
    python -m validation.timeline --check   # measure again; exit 1 if it differs

Every op's outputs are recorded by storage (a TorchDispatchMode); each storage is held by
a weak reference, so it leaves the count the moment PyTorch frees it. After every op the
live bytes are summed; the parameters, buffers, inputs and optimizer state, alive all
step, are added once (views of them, such as W.T, are not new storage); the last step's
loss and logits are counted until the loop drops them. The step is the second one (optimizer state allocated), with
zero_grad(set_to_none=True). What one op allocates and frees inside itself (a kernel's
workspace) is not seen; CUDA's max_memory_allocated() would see it.

Each step also records the most live bytes of each phase (PHASES: the forward pass, the
backward through the head, the last block, the first block and the embedding, the
optimizer step), which tests/engine/test_step_peak.py compares with calc's moments.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import warnings
from pathlib import Path

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode, is_traceable_wrapper_subclass
from torch.utils._pytree import tree_flatten

from validation.reference_model import Transformer
from validation.record import write_or_check
from validation.run import SMALL_SHAPES

RESULTS = Path(__file__).with_name("timeline.json")

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


class LiveBytes(TorchDispatchMode):
    """The bytes of storages made since the mode started and not yet freed, after every op;
    the most of them, and the op it came after.

    A storage is known by its identity (its StorageImpl, held weakly), and counted at its
    size now: a storage resized in place (FSDP2 frees and re-allocates its unsharded
    parameters with `untyped_storage().resize_`, outside the dispatcher) is counted at
    its new size from the next op on."""

    def __init__(self, held=(), alive=()):
        super().__init__()
        self.held = {StorageWeakRef(t.untyped_storage()).cdata for t in held}  # alive all step; views are not new
        self.refs: dict[int, StorageWeakRef] = {}
        self.sizes: dict[int, int] = {}
        for t in alive:  # alive before the step, until the loop drops them (the last step's loss and logits)
            self._track(t)
        self.ops = 0
        self.peak = 0
        self.peak_op = ""
        self.phase = "forward"
        self.phase_peaks: dict[str, int] = {}

    def live(self) -> int:
        for key in [k for k, ref in self.refs.items() if ref.expired()]:
            del self.refs[key], self.sizes[key]
        return sum(self.sizes.values())

    def _track(self, t: torch.Tensor) -> None:
        if is_traceable_wrapper_subclass(t):  # a DTensor holds no memory; its local tensor does, made unseen
            for name in t.__tensor_flatten__()[0]:
                if isinstance(inner := getattr(t, name), torch.Tensor):
                    self._track(inner)
        else:
            self.track_storage(t.untyped_storage())

    def track_storage(self, storage) -> None:
        """Count `storage` at its size now (a new one, or one resized in place)."""
        ref = StorageWeakRef(storage)
        if ref.cdata in self.held:
            return
        if ref.cdata not in self.refs or self.refs[ref.cdata].expired():
            self.refs[ref.cdata] = ref
        self.sizes[ref.cdata] = storage.nbytes()

    @contextlib.contextmanager
    def observing_resizes(self):
        """Within it, every `UntypedStorage.resize_` updates the count."""
        resize = torch.UntypedStorage.resize_

        def observed(storage, size):
            out = resize(storage, size)
            self.track_storage(storage)
            return out

        torch.UntypedStorage.resize_ = observed
        try:
            yield self
        finally:
            torch.UntypedStorage.resize_ = resize

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t)
        self.ops += 1
        now = self.live()
        if now > self.peak:
            self.peak, self.peak_op = now, f"op {self.ops}, {func}"
        self.phase_peaks[self.phase] = max(now, self.phase_peaks.get(self.phase, 0))
        return out

    def enter(self, phase: str) -> None:
        """From the next op on, count the most live bytes under `phase`, afresh (the middle
        blocks of one backward pass together)."""
        if phase != self.phase:
            self.phase_peaks.pop(phase, None)
        self.phase = phase


PHASES = ("forward", "head", "last-block", "first-block", "embedding", "optimizer")
"""The phases of a step whose most live bytes the timeline records, as calc's moments
name them: the forward pass; backward through the loss, LM head and final norm; through
the last block; through the first block; through the embedding; the optimizer step (and
zero_grad). Each holds the last micro-batch's figure. A model of more than two blocks
also records "middle-blocks", backward through the blocks in between."""


def _mark_blocks(model, mode: LiveBytes) -> list:
    """Hooks that tell `mode` where backward enters each block and the embedding: the
    gradient of each block's output, and of the first block's input, fire as backward
    reaches them."""
    blocks = list(model.blocks)

    def on_output(phase):
        def hook(module, args, output):
            if output.requires_grad and torch.is_grad_enabled():
                output.register_hook(lambda grad: mode.enter(phase))
        return hook

    def on_input(module, args):
        if args[0].requires_grad and torch.is_grad_enabled():
            args[0].register_hook(lambda grad: mode.enter("embedding"))

    phases = ["first-block", *["middle-blocks"] * (len(blocks) - 2), "last-block"][-len(blocks):]
    return [*(block.register_forward_hook(on_output(phase)) for block, phase in zip(blocks, phases)),
            blocks[0].register_forward_pre_hook(on_input)]


def step_peak(cfg: dict, batch: int, optimizer: str = "foreach", dtype: str = "fp32", attention: str = "explicit",
              checkpoint: str = "none", microbatches: int = 1, keep_logits: bool = False
              ) -> tuple[int, str, dict[str, int]]:
    """(peak bytes of a steady-state step, the op after which it was reached, the peak bytes
    of each phase in PHASES) for the reference model with AdamW (`optimizer`: "for-loop",
    "foreach" or "fused"), or bitsandbytes' AdamW8bit ("adamw-8bit"; its step is one op,
    whose CPU fallback dequantises the state inside it, unseen here).

    The loop is written as readers write it: `loss` (and with keep_logits `logits`) are
    names that keep their tensors until the next micro-batch rebinds them; gradients are
    accumulated over `microbatches` micro-batches, then the optimizer steps and
    zero_grad(set_to_none=True) drops them."""
    torch.manual_seed(0)
    model = Transformer(cfg)
    if optimizer == "adamw-8bit":
        import bitsandbytes as bnb
        opt = bnb.optim.AdamW8bit(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=optimizer == "foreach", fused=optimizer == "fused")
    ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
    names: dict[str, torch.Tensor] = {}  # the loop's local variables
    mode = None

    def enter(phase):
        if mode is not None:
            mode.enter(phase)

    def step():
        for _ in range(microbatches):
            enter("forward")
            with autocast:
                if keep_logits:
                    names["logits"] = model.logits(ids, attention, checkpoint)
                    names["loss"] = model.loss(names["logits"], targets)
                else:
                    names["loss"] = model(ids, targets, attention=attention, checkpoint=checkpoint)
            enter("head")
            names["loss"].backward()
        enter("optimizer")
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # the optimizer's state exists from here on
    held = [*model.parameters(), *model.buffers(), ids, targets,
            *(t for state in opt.state.values() for t in state.values() if isinstance(t, torch.Tensor))]
    held_bytes = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in held}.values())
    mode = LiveBytes(held, alive=names.values())
    hooks = _mark_blocks(model, mode)
    with mode:
        step()
    for hook in hooks:
        hook.remove()
    return held_bytes + mode.peak, mode.peak_op, {phase: held_bytes + peak for phase, peak in mode.phase_peaks.items()}


SMALL = SMALL_SHAPES["small-cs336"]
"""The reference model's small shape, on which every optimizer and loop is measured."""

SHAPES = {**SMALL_SHAPES, "small-cs336-v256": dict(SMALL, vocab=256)}
"""The shapes stepped: the small ones, and the small CS336 shape with a 256-token
vocabulary, whose embedding and head (8,192 values each) are large enough for AdamW8bit's
8-bit state (every tensor of the small shapes is under 4,096 values)."""


def cases():
    """(shape, batch, optimizer, dtype, attention, checkpoint, microbatches, keep_logits) of
    every measured step: on the small CS336 shape every optimizer, precision, attention,
    checkpointing, accumulation and logits-keeping loop; on every small shape (GELU,
    LayerNorm with biases, learned positions, tied embeddings, grouped and multi-query
    attention, three blocks) each precision, attention, checkpointing and accumulation;
    bitsandbytes' AdamW8bit on the small CS336 shape in each precision, attention and
    checkpointing, and on every small shape with accumulation."""
    for batch in (1, 4):
        for optimizer in ("for-loop", "foreach", "fused"):
            for dtype, attention, checkpoint in (("fp32", "explicit", "none"), ("bf16", "explicit", "none"),
                                                 ("bf16", "flash", "block"), ("fp32", "flash", "none")):
                for microbatches, keep_logits in ((1, False), (1, True), (3, False)):
                    yield "small-cs336", batch, optimizer, dtype, attention, checkpoint, microbatches, keep_logits
    for shape in SMALL_SHAPES:
        for batch, dtype, attention, checkpoint, microbatches in itertools.product(
                (1, 3), ("fp32", "bf16"), ("explicit", "flash"), ("none", "block"), (1, 3)):
            yield shape, batch, "fused", dtype, attention, checkpoint, microbatches, False
    for batch in (1, 4):
        for dtype, attention, checkpoint in (("fp32", "explicit", "none"), ("bf16", "explicit", "none"),
                                             ("bf16", "flash", "block"), ("fp32", "flash", "none")):
            yield "small-cs336", batch, "adamw-8bit", dtype, attention, checkpoint, 1, False
    for shape in SHAPES:
        yield shape, 3, "adamw-8bit", "fp32", "explicit", "none", 3, False
    for dtype, attention, checkpoint in (("bf16", "explicit", "none"), ("bf16", "flash", "block")):
        yield "small-cs336-v256", 1, "adamw-8bit", dtype, attention, checkpoint, 1, False


def run() -> dict:
    results = []
    for shape, batch, optimizer, dtype, attention, checkpoint, microbatches, keep_logits in cases():
        peak, where, phases = step_peak(SHAPES[shape], batch, optimizer, dtype, attention, checkpoint,
                                        microbatches, keep_logits)
        results.append(dict(shape=shape, batch=batch, optimizer=optimizer, dtype=dtype, attention=attention,
                            checkpoint=checkpoint, microbatches=microbatches, keep_logits=keep_logits, peak=peak,
                            at=where.split(", ", 1)[1], phases=phases))
    return {"torch": torch.__version__.split("+")[0], "device": "cpu", "shapes": SHAPES, "steps": results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed timeline.json")
    args = parser.parse_args(argv)
    fresh = run()
    if not args.check:
        for r in fresh["steps"]:
            print(f"{r['shape']:28} B={r['batch']} {r['optimizer']:8} {r['dtype']} {r['attention']:8} {r['checkpoint']:5} "
                  f"M={r['microbatches']} logits={r['keep_logits']!s:5}: {r['peak']:,} bytes after {r['at']}")
    return write_or_check(RESULTS, fresh, "validation.timeline", args.check)


if __name__ == "__main__":
    sys.exit(main())
