"""CUDA's rules, applied on the CPU: what a model keeps for backward on an NVIDIA GPU,
derived without one.

Three things differ from the CPU, and each is taken from PyTorch's own source:

- **autocast's op lists**: `torch/include/ATen/autocast_mode.h` (AT_FORALL_LOWER_PRECISION_FP,
  AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE), read from the installed torch by
  `op_lists()`. On CUDA softmax, log_softmax, layer_norm, pow, rsqrt, exp, sum and others
  run in fp32; CPU autocast lowers the matmuls and little else.
- **the attention kernel** scaled_dot_product_attention picks (`sdp_utils.cpp`): flash for
  bf16/fp16 with a head size up to 256 and a multiple of 8 and no mask; memory-efficient
  for fp32, or with a mask, and not for grouped-query attention; the math composite
  otherwise. The flash and memory-efficient aten ops have meta kernels, and their autograd
  formulas (derivatives.yaml) are the CUDA ones: called on fake tensors, they save what
  they save on a GPU (an fp32 log-sum-exp, padded to 32 rows by the memory-efficient
  kernel, and the RNG's seed and offset).
- **dropout**: on CUDA F.dropout takes the fused kernel (native_dropout), which keeps a
  1-byte bool mask; the CPU keeps a noise tensor in the input's dtype.

`CudaRules` is a TorchFunctionMode that applies all three to CPU (fake) tensors: bf16
autocast (when `autocast` is set), the kernel choice and the dropout. It is a derivation,
not a measurement: `python -m validation.run --device cuda` measures on a real GPU.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

HEADER = Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h"
_LISTS = {"lower": "AT_FORALL_LOWER_PRECISION_FP", "fp32": "AT_FORALL_FP32", "fp32_out": "AT_FORALL_FP32_SET_OPT_DTYPE"}
_DUNDER = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__pow__": "pow", "__rpow__": "pow"}


def op_lists(header: Path = HEADER) -> dict[str, frozenset[str]]:
    """CUDA autocast's lists from PyTorch's header: "lower" (run in bf16), "fp32" (inputs cast
    to fp32) and "fp32_out" (run with dtype=float32 when no dtype is given)."""
    text = header.read_text()
    lists = {}
    for key, macro in _LISTS.items():
        body = re.search(rf"#define {macro}\(_\)(.*?)\n\n", text, re.S)
        assert body, f"{macro} not found in {header}"
        lists[key] = frozenset(re.findall(r"_\((\w+)", body.group(1)))
    return lists


def _op_name(func) -> str:
    name = getattr(func, "__name__", "")
    return _DUNDER.get(name, name)


def attention_kernel(q: torch.Tensor, k: torch.Tensor, mask, enable_gqa: bool) -> str:
    """The kernel CUDA's scaled_dot_product_attention runs for these inputs (A100/H100:
    sm80 and later): "flash", "efficient" or "math"."""
    d_head, half = q.shape[-1], q.dtype in (torch.bfloat16, torch.float16)
    gqa = enable_gqa and k.shape[-3] != q.shape[-3]
    if half and mask is None and d_head <= 256 and d_head % 8 == 0:
        return "flash"
    if not gqa and d_head % (8 if half else 4) == 0:
        return "efficient"
    return "math"


def cuda_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """scaled_dot_product_attention as CUDA runs it: the kernel's own aten op."""
    kernel = attention_kernel(q, k, attn_mask, enable_gqa)
    if kernel == "flash":
        return torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
    if kernel == "efficient":
        if attn_mask is not None and attn_mask.dtype == torch.bool:  # sdpa turns a bool mask into an additive one
            attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype).masked_fill(attn_mask.logical_not(), -math.inf)
        if attn_mask is not None and attn_mask.shape[-1] % 16:
            raise NotImplementedError("the memory-efficient kernel pads a mask to 16 columns: not derived")
        return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, True, dropout_p, is_causal,
                                                                       scale=scale)[0]
    if dropout_p:
        raise NotImplementedError("the math kernel's dropout on CUDA is not derived")
    if q.shape[-1] % (8 if q.dtype in (torch.bfloat16, torch.float16) else 4):
        raise NotImplementedError("SDPA on a head size the fused kernels do not take (padded or math) is not derived")
    return torch.ops.aten._scaled_dot_product_attention_math(q, k, v, attn_mask, 0.0, is_causal, None, scale=scale,
                                                             enable_gqa=enable_gqa)[0]


def cuda_dropout(x, p=0.5, training=True, inplace=False):
    """F.dropout on a CUDA tensor: the fused kernel, which keeps a bool mask."""
    if not training or p == 0:
        return x
    if inplace:
        raise NotImplementedError("in-place dropout is not derived")
    return torch.native_dropout(x, p, True)[0]


class CudaRules(TorchFunctionMode):
    """CUDA's autocast (bf16, when `autocast`), attention kernels and dropout, on CPU tensors.

    Autocast's cast cache is kept as CUDA keeps it: a parameter (a leaf that requires grad)
    is cast to bf16 once per region, and every later use gets the same copy.
    """

    def __init__(self, autocast: bool, lists: dict[str, frozenset[str]] | None = None):
        super().__init__()
        self.autocast = autocast
        self.lists = lists or op_lists()
        self.cache: dict[int, torch.Tensor] = {}

    def _cast(self, tree, to: torch.dtype):
        def cast(t):
            if not (isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != to and t.dtype != torch.float64):
                return t
            if to == torch.bfloat16 and t.is_leaf and t.requires_grad:
                if id(t) not in self.cache:
                    self.cache[id(t)] = t.to(to)
                return self.cache[id(t)]
            return t.to(to)
        return tree_map(cast, tree)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is F.dropout:
            return cuda_dropout(*args, **kwargs)
        if func is F.layer_norm and not self.autocast and args[0].dtype == torch.bfloat16:
            raise NotImplementedError("LayerNorm on bf16 keeps fp32 statistics on CUDA (its CUDA kernel): not derived")
        if not self.autocast:
            return cuda_sdpa(*args, **kwargs) if func is F.scaled_dot_product_attention else func(*args, **kwargs)
        if func is F.cross_entropy:  # a composite: log_softmax (fp32 out) then nll_loss (fp32)
            logits, target = args[:2]
            if kwargs.pop("label_smoothing", 0.0) or kwargs.get("weight") is not None:
                raise NotImplementedError("cross-entropy with label smoothing or class weights is not derived")
            kwargs = {k: v for k, v in kwargs.items() if k in ("ignore_index", "reduction")}
            return F.nll_loss(F.log_softmax(logits, 1 if logits.dim() > 1 else 0, dtype=torch.float32), target,
                              **kwargs)
        if func is F.scaled_dot_product_attention:
            return cuda_sdpa(*self._cast(args, torch.bfloat16), **self._cast(kwargs, torch.bfloat16))
        name = _op_name(func)
        if name in self.lists["lower"]:
            args, kwargs = self._cast(args, torch.bfloat16), self._cast(kwargs, torch.bfloat16)
        elif name in self.lists["fp32"]:
            args, kwargs = self._cast(args, torch.float32), self._cast(kwargs, torch.float32)
        elif (name in self.lists["fp32_out"] and kwargs.get("dtype") is None and args
              and isinstance(args[0], torch.Tensor) and args[0].is_floating_point()):
            kwargs["dtype"] = torch.float32
        return func(*args, **kwargs)
