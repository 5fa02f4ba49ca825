"""What an NVIDIA GPU does differently from the CPU, as PyTorch's CUDA source says.

Derived from PyTorch 2.13's source and checked on the CPU (validation/cuda_rules.py runs
each model under these rules on fake tensors, with the CUDA kernels' own meta functions);
not yet measured on a GPU:

- autocast's op lists (torch/include/ATen/autocast_mode.h): besides the matmuls, which
  run in bf16 on both devices, CUDA runs softmax, log_softmax, sum, exp, log, pow, rsqrt
  and layer_norm in fp32 (CPU autocast keeps them in the input's dtype);
- scaled_dot_product_attention picks a kernel (aten/src/ATen/native/transformers/cuda/
  sdp_utils.cpp), and each keeps its own tensors for backward;
- dropout takes the fused kernel, whose mask is one byte a value (bool), where the CPU
  keeps a noise tensor in the input's dtype.
"""

from __future__ import annotations

from calc.errors import FieldError

FP32_ON_CUDA = ("softmax", "log_softmax", "sum", "exp", "log", "pow", "rsqrt", "layer_norm", "logsumexp")
"""Ops the implementations call that CUDA autocast runs in fp32 (AT_FORALL_FP32, and
AT_FORALL_FP32_SET_OPT_DTYPE for softmax, log_softmax and sum); CPU autocast does not."""
LOWERED_ON_BOTH = ("linear", "matmul", "addmm", "bmm", "scaled_dot_product_attention")
"""Ops autocast runs in bf16 on both devices (AT_FORALL_LOWER_PRECISION_FP on CUDA)."""
MASK_BYTES_ON_CUDA = 1
"""Bytes per value of a dropout mask on CUDA (native_dropout's bool mask)."""
RNG_STATE_BYTES = {"flash": 24, "efficient": 16}
"""Bytes each attention call keeps of the RNG's state: the flash kernel a 2-element uint64
seed-and-offset tensor and an unused uint64 scalar, the memory-efficient kernel an int64
seed and an int64 offset."""
LOGSUMEXP_ROWS_ALIGNMENT = 32
"""The memory-efficient kernel pads its fp32 log-sum-exp to a multiple of 32 query rows."""
FLASH_MAX_HEAD_SIZE = 256


def attention_kernel(d_head: int, dtype: str, masked: bool = False, grouped: bool = False) -> str:
    """The kernel CUDA's scaled_dot_product_attention runs on an A100 or H100 (sm80+):
    "flash" (bf16, head size up to 256 and a multiple of 8, no mask), "efficient"
    (otherwise, when the head size is a multiple of 8 for bf16 or 4 for fp32; it has no
    grouped-query attention) or "math" (the composite of matmuls and softmax).

    `masked`: an explicit mask is passed (not is_causal); `grouped`: K and V have fewer
    heads than Q and are passed with enable_gqa."""
    half = dtype in ("bf16", "bf16-master")
    if half and not masked and d_head <= FLASH_MAX_HEAD_SIZE and d_head % 8 == 0:
        return "flash"
    if not grouped and d_head % (8 if half else 4) == 0:
        return "efficient"
    return "math"


def check_kernel(kernel: str, supported: tuple[str, ...]) -> None:
    """FieldError where SDPA would run a kernel whose saved tensors calc has not derived."""
    if kernel not in supported:
        raise FieldError("attention", f"on CUDA, scaled_dot_product_attention would run its {kernel} kernel here, "
                                      "whose saved tensors are not derived yet: choose explicit attention, another "
                                      "head size, or device cpu")
