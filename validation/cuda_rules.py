"""CUDA's rules, applied on the CPU: what a model keeps for backward on an NVIDIA GPU of a
given compute capability, derived without one.

Four things differ from the CPU, and each is taken from PyTorch's own source (torch 2.13):

- **autocast's op lists**: `torch/include/ATen/autocast_mode.h` (AT_FORALL_LOWER_PRECISION_FP,
  AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE), read from the installed torch by
  `op_lists()`. On CUDA softmax, log_softmax, layer_norm, pow, rsqrt, exp, sum, nll_loss and
  others run in fp32; CPU autocast lowers the matmuls and little else. An op of the
  "set_opt_dtype" list that is given a dtype keeps it: F.cross_entropy's composite
  (`cross_entropy_loss_symint`, aten/src/ATen/native/LossNLL.cpp) calls
  `log_softmax(self, class_dim, self.scalar_type())`, so bf16 logits give bf16
  log-probabilities, which nll_loss (an fp32 op) then casts to fp32: both are kept.
- **the attention kernel** scaled_dot_product_attention picks (`cuda/sdp_utils.cpp`,
  `select_sdp_backend`), which depends on the card: see `attention_kernel`. The cuDNN, flash
  and memory-efficient aten ops have meta kernels and CUDA's autograd formulas
  (derivatives.yaml): called on fake tensors, they save what they save on a GPU. The math
  composite (`_scaled_dot_product_attention_math`) is mirrored op by op by `math_attention`,
  which `check_math_mirror()` holds equal to PyTorch's own on the CPU.
- **dropout**: on CUDA `at::dropout` takes the fused kernel (native_dropout), which keeps a
  1-byte bool mask; the CPU keeps a noise tensor in the input's dtype.
- **LayerNorm on bf16 tensors** (a model cast to bf16, no autocast): CUDA's kernel
  (`cuda/layer_norm_kernel.cu`) returns the mean and 1/σ in the accumulation type, fp32;
  the CPU's in bf16.

`CudaRules` is a TorchFunctionMode that applies all four to CPU (fake) tensors. It is a
derivation: `python -m validation.run --device cuda` measures on a real GPU, and the
measurements of an H200 (sm90) equal this derivation with `sm=90`.
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
_HALF = (torch.bfloat16, torch.float16)
ARCHES = (70, 75, 80, 86, 89, 90, 100, 120)
"""Compute capabilities (sm) the rules are written for: V100, T4, A100, A10/RTX 3090,
L4/L40S/RTX 4090, H100/H200, B200, RTX 5090."""


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


def attention_kernel(q: torch.Tensor, k: torch.Tensor, mask, enable_gqa: bool, dropout_p: float, sm: int) -> str:
    """The kernel CUDA's scaled_dot_product_attention runs for these inputs on a card of
    compute capability `sm` (sdp_utils.cpp, select_sdp_backend): "cudnn", "flash",
    "efficient" or "math".

    - cuDNN comes first on sm90 and sm100 (check_prefer_cudnn_attention, cuDNN 9.9+): half
      precision, a head size that 8 divides, up to 256 on sm90 (cuDNN 9.10+) and 128
      elsewhere (check_cudnn_tensor_shapes), more than one key; it takes masks, dropout
      and grouped K and V;
    - flash (sm80 to sm121): half precision, no mask, head sizes up to 256 (padded to a
      multiple of 8 by the caller), not (192, 224] in training on sm86/89/120/121, nor
      above 224 with dropout there; it takes grouped K and V;
    - memory-efficient (sm50 to sm121): fp32 and fp16, and bf16 from sm80; a head size that
      the GEMM alignment divides (8 in half precision, 4 in fp32 from sm80, 1 in fp32
      before); no grouped K and V;
    - the math composite otherwise."""
    d, half = q.shape[-1], q.dtype in _HALF
    grouped = enable_gqa and k.shape[-3] != q.shape[-3]
    if sm in (90, 100) and half and d % 8 == 0 and d <= (256 if sm == 90 else 128) and k.shape[-2] > 1:
        return "cudnn"
    if 80 <= sm <= 121 and half and mask is None and d <= 256:
        narrow_arch = sm in (86, 89, 120, 121)
        if not (narrow_arch and (192 < d <= 224 or (d > 224 and dropout_p > 0))):
            return "flash"
    if not grouped and 50 <= sm <= 121 and (q.dtype != torch.bfloat16 or sm >= 80):
        alignment = 8 if half else (4 if sm >= 80 else 1)
        if d % alignment == 0:
            return "efficient"
    return "math"


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as the additive one SDPA makes of it (convert_boolean_attn_mask)."""
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask.logical_not(), -math.inf)


def math_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False,
                   fused_dropout=True):
    """PyTorch's math composite (attention.cpp, _scaled_dot_product_attention_math), op by
    op: half-precision inputs upcast to fp32, Q and K each scaled by √scale, the causal
    mask made additive, grouped K and V repeated, softmax, dropout, P·V, cast back.
    `fused_dropout`: CUDA's native_dropout (a bool mask); else the CPU's noise tensor."""
    origin = q.dtype
    if origin in _HALF:
        q, k, v = q.float(), k.float(), v.float()
    root = math.sqrt(scale if scale is not None else 1 / math.sqrt(q.shape[-1]))
    query = q * root
    if is_causal:
        attn_mask = _additive(torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), query.dtype)
    elif attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask = _additive(attn_mask, query.dtype)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        group = q.shape[-3] // k.shape[-3]
        k, v = k.repeat_interleave(group, -3), v.repeat_interleave(group, -3)
    attn = query @ (k.transpose(-2, -1) * root)
    if attn_mask is not None:
        attn.add_(attn_mask)
    attn = torch.softmax(attn, -1)
    if dropout_p > 0:
        attn = torch.native_dropout(attn, dropout_p, True)[0] if fused_dropout else F.dropout(attn, dropout_p, True)
    return (attn @ v).to(origin)


def cuda_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False, sm=90):
    """scaled_dot_product_attention as CUDA runs it on an sm`sm` card: the kernel's own aten
    op, or the math composite."""
    kernel = attention_kernel(q, k, attn_mask, enable_gqa, dropout_p, sm)
    if kernel == "cudnn":
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = _additive(attn_mask, q.dtype)
        return torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, attn_mask, True, dropout_p, is_causal,
                                                                   False, scale=scale)[0]
    if kernel == "flash":  # attention.cpp pads the head size to a multiple of 8 and slices the output back
        d = q.shape[-1]
        scale = 1 / math.sqrt(d) if scale is None else scale
        if d % 8:
            q, k, v = (F.pad(t, (0, 8 - d % 8)) for t in (q, k, v))
        out = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, False, scale=scale)[0]
        return out[..., :d] if d % 8 else out
    if kernel == "efficient":
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = _additive(attn_mask, q.dtype)
        if attn_mask is not None and attn_mask.shape[-1] % 16:
            raise NotImplementedError("the memory-efficient kernel pads a mask to 16 columns: not derived")
        return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, True, dropout_p, is_causal,
                                                                       scale=scale)[0]
    return math_attention(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa)


def cuda_dropout(x, p=0.5, training=True, inplace=False):
    """F.dropout on a CUDA tensor: the fused kernel, which keeps a bool mask."""
    if not training or p == 0:
        return x
    if inplace:
        raise NotImplementedError("in-place dropout is not derived")
    return torch.native_dropout(x, p, True)[0]


class _CudaLayerNorm(torch.autograd.Function):
    """native_layer_norm as CUDA's kernel runs it on bf16 tensors: the same output, its
    mean and 1/σ kept in fp32 (the accumulation type) with the input, weight and bias."""

    @staticmethod
    def forward(ctx, x, normalized_shape, weight, bias, eps):
        out, mean, rstd = torch.ops.aten.native_layer_norm(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(x, mean.float(), rstd.float(), weight, bias)
        return out

    @staticmethod
    def backward(ctx, grad):  # the bytes are what is derived; the values are never used
        x, _, _, weight, bias = ctx.saved_tensors
        return grad, None, grad.new_zeros(weight.shape), None if bias is None else grad.new_zeros(bias.shape), None


def cuda_layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    if x.dtype not in _HALF:
        return F.layer_norm(x, normalized_shape, weight, bias, eps)
    return _CudaLayerNorm.apply(x, tuple(normalized_shape), weight, bias, eps)


def cuda_cross_entropy(logits, target, *args, **kwargs):
    """F.cross_entropy's composite under CUDA autocast: log_softmax in the logits' own dtype
    (the composite passes it), then nll_loss on an fp32 copy (nll_loss is an fp32 op)."""
    if args or kwargs.pop("label_smoothing", 0.0) or kwargs.get("weight") is not None:
        raise NotImplementedError("cross-entropy with label smoothing or class weights is not derived")
    kwargs = {k: v for k, v in kwargs.items() if k in ("ignore_index", "reduction")}
    log_probs = F.log_softmax(logits, 1 if logits.dim() > 1 else 0, dtype=logits.dtype)
    if log_probs.dtype in _HALF:
        log_probs = log_probs.to(torch.float32)
    return F.nll_loss(log_probs, target, **kwargs)


class CudaRules(TorchFunctionMode):
    """CUDA's autocast (bf16, when `autocast`), attention kernels (for a card of compute
    capability `sm`), dropout and LayerNorm, on CPU tensors.

    Autocast's cast cache is kept as CUDA keeps it: a parameter (a leaf that requires grad)
    is cast to bf16 once per region, and every later use gets the same copy.
    """

    def __init__(self, autocast: bool, sm: int = 90, lists: dict[str, frozenset[str]] | None = None):
        super().__init__()
        assert sm in ARCHES, f"sm{sm}: no rules written"
        self.autocast, self.sm = autocast, sm
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
        if func is F.scaled_dot_product_attention:
            if self.autocast:
                args, kwargs = self._cast(args, torch.bfloat16), self._cast(kwargs, torch.bfloat16)
            return cuda_sdpa(*args, **kwargs, sm=self.sm)
        if not self.autocast:
            return cuda_layer_norm(*args, **kwargs) if func is F.layer_norm else func(*args, **kwargs)
        if func is F.cross_entropy:
            return cuda_cross_entropy(*args, **kwargs)
        name = _op_name(func)
        if name in self.lists["lower"]:
            args, kwargs = self._cast(args, torch.bfloat16), self._cast(kwargs, torch.bfloat16)
        elif name in self.lists["fp32"]:
            args, kwargs = self._cast(args, torch.float32), self._cast(kwargs, torch.float32)
        elif (name in self.lists["fp32_out"] and kwargs.get("dtype") is None and args
              and isinstance(args[0], torch.Tensor) and args[0].is_floating_point()):
            kwargs["dtype"] = torch.float32
        return func(*args, **kwargs)


def check_math_mirror() -> None:
    """`math_attention` saves what PyTorch's own math composite saves, on CPU fake tensors
    (fp32 and bf16, grouped or not, causal or masked, with and without the CPU's dropout):
    the mirror CUDA's rules use is the composite itself, with CUDA's dropout."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    def saved_bytes(run) -> int:
        storages = {}

        def pack(t):
            storages[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run()
        return sum(storages.values())

    with FakeTensorMode():
        for dtype in (torch.float32, torch.bfloat16):
            for kv_heads, p, causal in ((4, 0.0, True), (2, 0.1, True), (4, 0.1, False), (2, 0.0, False)):
                q = torch.randn(3, 4, 16, 8, dtype=dtype, requires_grad=True)
                k, v = (torch.randn(3, kv_heads, 16, 8, dtype=dtype, requires_grad=True) for _ in range(2))
                mask = None if causal else torch.ones(16, 16, dtype=torch.bool).tril()
                gqa = kv_heads != 4
                ours = saved_bytes(lambda: math_attention(q, k, v, mask, p, causal, None, gqa, fused_dropout=False))
                theirs = saved_bytes(lambda: torch.ops.aten._scaled_dot_product_attention_math(
                    q, k, v, None if mask is None else _additive(mask, dtype), p, causal, None, enable_gqa=gqa)[0])
                assert ours == theirs, f"the math mirror saves {ours} bytes, PyTorch's composite {theirs} " \
                                       f"({dtype}, {kv_heads} K/V heads, dropout {p}, causal {causal})"
