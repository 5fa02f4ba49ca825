"""Measure, byte for byte, what PyTorch autograd keeps for backward in the reference model.

Every tensor an operation saves for backward passes through
`torch.autograd.graph.saved_tensors_hooks` (activation checkpointing's saved block inputs
too); we record its storage, so that two ops saving the same tensor, or two views of one
tensor, count once, and sort it into:

- ``activations``: what the forward pass keeps for backward, parameters and buffers apart;
- ``weight_copies``: the bf16 copies of parameters that autocast makes and the graph keeps;
- ``saved_parameters``: storages of parameters and buffers (fixed memory, reported apart).

Full-size shapes run on fake tensors (shapes and dtypes, no data); small shapes also run
on real CPU tensors, and the two must agree.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from validation.reference_model import Transformer

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

_VIEW_NODES = {"TBackward0", "ViewBackward0", "TransposeBackward0", "ExpandBackward0"}


def _storage_key(t: torch.Tensor):
    return t.untyped_storage()._cdata


def _is_weight_copy(t: torch.Tensor) -> bool:
    """A cast of a parameter (autocast's cached copy), seen through any views of it."""
    node = t.grad_fn
    while node is not None and type(node).__name__ in _VIEW_NODES:
        node = node.next_functions[0][0]
    if node is None or type(node).__name__ != "ToCopyBackward0":
        return False
    return any(type(fn).__name__ == "AccumulateGrad" for fn, _ in node.next_functions if fn is not None)


def measure(cfg: dict, batch: int, attention: str, checkpoint: str, dtype: str, fake: bool) -> dict:
    """Bytes saved for backward by one forward pass (loss included) of the reference model."""
    mode = contextlib.nullcontext()
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode()
    with mode:
        torch.manual_seed(0)
        model = Transformer(cfg)
        ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        fixed = {_storage_key(p) for p in model.parameters()} | {_storage_key(b) for b in model.buffers()}
        seen: set = set()
        totals = {"activations": 0, "weight_copies": 0, "saved_parameters": 0}

        def pack(t: torch.Tensor):
            key = _storage_key(t)
            if key not in seen:
                seen.add(key)
                kind = "saved_parameters" if key in fixed else "weight_copies" if _is_weight_copy(t) else "activations"
                totals[kind] += t.untyped_storage().nbytes()
            return t

        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            loss = model(ids, targets, attention=attention, checkpoint=checkpoint)
        if not fake:
            loss.backward()  # the graph we measured is one that backward can run
    return totals
