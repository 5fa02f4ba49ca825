"""Measure, byte for byte, what PyTorch autograd keeps for backward in one forward pass.

Every tensor an operation saves for backward passes through
`torch.autograd.graph.saved_tensors_hooks` (activation checkpointing's saved inputs
too); we record its storage, so that two ops saving the same tensor, or two views of one
tensor, count once, and sort it into:

- ``activations``: what the forward pass keeps for backward, parameters and buffers apart;
- ``weight_copies``: the bf16 copies of parameters that autocast makes and the graph keeps;
- ``saved_parameters``: storages of parameters and buffers (fixed memory, reported apart).

Three implementations of the same shapes (a plain dict with calc's field names, so that
nothing here imports calc): the reference model (validation/reference_model.py), a
from-scratch CS336 model (validation/scratch_model.py) and Hugging Face transformers
(validation/hf_models.py). Full-size shapes run on fake tensors (shapes and dtypes, no
data); small shapes also run on real CPU tensors, and the two must agree.
"""

from __future__ import annotations

import contextlib
import unittest.mock
import warnings

import torch

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*")  # transformers 5's rename notice

_VIEW_NODES = {"TBackward0", "ViewBackward0", "TransposeBackward0", "ExpandBackward0", "PermuteBackward0",
               "UnsafeViewBackward0", "ReshapeAliasBackward0"}


def _storage_key(t: torch.Tensor):
    return t.untyped_storage()._cdata


def is_weight_copy(t: torch.Tensor) -> bool:
    """A cast of a parameter (autocast's cached copy), seen through any views of it."""
    node = t.grad_fn
    while node is not None and type(node).__name__ in _VIEW_NODES:
        node = node.next_functions[0][0]
    if node is None or type(node).__name__ != "ToCopyBackward0":
        return False
    source = node.next_functions[0][0]  # what was cast: a parameter, or a view of one (W.T)
    while source is not None and type(source).__name__ in _VIEW_NODES:
        source = source.next_functions[0][0]
    return source is not None and type(source).__name__ == "AccumulateGrad"


def _keep(tensor, *args, **kwargs):
    """An initialiser that leaves the tensor as it is: trunc_normal_ asks whether its
    samples need redrawing, data that fake tensors lack (and values change nothing saved)."""
    return tensor


def _model(cfg: dict, attention: str, checkpoint: str):
    """The model `cfg["implementation"]` names, in training mode, and how to run it:
    (model, run(model, ids, targets) -> loss)."""
    implementation = cfg.get("implementation", "reference")
    if implementation == "hf":
        from validation.hf_models import hf_model

        model = hf_model(cfg, attention)
        if checkpoint == "block":
            model.gradient_checkpointing_enable()  # per decoder layer, transformers' default settings
        return model, lambda m, ids, targets: m(input_ids=ids, labels=ids).loss
    if implementation == "scratch":
        from validation.scratch_model import ScratchTransformer

        model = ScratchTransformer(cfg, softmax=cfg.get("softmax", "max"), cross_entropy=cfg.get("cross_entropy", "logsumexp"),
                                   pick=cfg.get("pick", "gather"))
        return model, lambda m, ids, targets: m(ids, targets)
    from validation.reference_model import Transformer

    model = Transformer(cfg)
    return model, lambda m, ids, targets: m(ids, targets, attention=attention, checkpoint=checkpoint)


def _cast_module(model, dtype) -> None:
    """model.to(dtype) for floating parameters and buffers, done by replacing them (fake
    tensors cannot be swapped in place); a tensor shared by two modules (tied weights) stays
    shared."""
    done: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for table, make in ((module._parameters, torch.nn.Parameter), (module._buffers, lambda t: t)):
            for name, t in table.items():
                if t is None or not t.is_floating_point():
                    continue
                if id(t) not in done:
                    done[id(t)] = make(t.detach().to(dtype))
                table[name] = done[id(t)]


def measure(cfg: dict, batch: int, attention: str, checkpoint: str, dtype: str, fake: bool,
            device: str = "cpu", sm: int = 90) -> dict:
    """Bytes saved for backward by one forward pass (loss included) of the model.

    dtype "fp32"; "bf16" (autocast over fp32 weights); "bf16-master" (the model cast to
    bf16, no autocast, as frameworks with an fp32 master copy in the optimizer run it).
    device "cpu" runs PyTorch as it is; "cuda-derived" runs it on CPU tensors under CUDA's
    rules for a card of compute capability `sm` (validation.cuda_rules: autocast's op lists,
    attention kernels, dropout, LayerNorm); "cuda" on a GPU, real tensors only.
    """
    assert not (fake and device == "cuda"), "on a GPU, measure real tensors"
    mode = contextlib.nullcontext()
    if fake:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode()
    as_real = contextlib.ExitStack()
    if fake:
        as_real.enter_context(unittest.mock.patch.object(torch.nn.init, "trunc_normal_", _keep))
        if cfg.get("implementation") == "hf":
            from validation.hf_models import as_on_real_tensors

            as_real.enter_context(as_on_real_tensors())
    on_gpu = torch.device("cuda") if device == "cuda" else contextlib.nullcontext()
    with mode, as_real, on_gpu:
        torch.manual_seed(0)
        model, run = _model(cfg, attention, checkpoint)
        model.train()
        if dtype == "bf16-master":  # bf16 weights, no autocast: the master copy lives in the optimizer
            _cast_module(model, torch.bfloat16)
        ids = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        targets = torch.randint(0, cfg["vocab"], (batch, cfg["context"]))
        fixed = {_storage_key(p) for p in model.parameters()} | {_storage_key(b) for b in model.buffers()}
        seen: set = set()
        totals = {"activations": 0, "weight_copies": 0, "saved_parameters": 0}

        def pack(t: torch.Tensor):
            key = _storage_key(t)
            if key not in seen:
                seen.add(key)
                kind = "saved_parameters" if key in fixed else "weight_copies" if is_weight_copy(t) else "activations"
                totals[kind] += t.untyped_storage().nbytes()
            return t

        if device == "cuda-derived":
            from validation.cuda_rules import CudaRules

            autocast = CudaRules(autocast=dtype == "bf16", sm=sm)
        elif device == "cuda":
            autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
        else:
            autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            loss = run(model, ids, targets)
        if not fake:
            loss.backward()  # the graph we measured is one that backward can run
    return totals
