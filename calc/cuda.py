"""What an NVIDIA GPU does differently from the CPU, as PyTorch's CUDA source says and an
H200 measured.

The rules (PyTorch 2.13's source; validation/cuda_rules.py applies them on the CPU, on
fake tensors with the CUDA kernels' own meta functions) equal, to the byte, what an H200
(sm90; torch 2.11) kept in every small-shape case of the validation grid
(validation/results-cuda.json). For other cards the same rules are derived, not measured:

- autocast's op lists (torch/include/ATen/autocast_mode.h): besides the matmuls, which
  run in bf16 on both devices, CUDA runs softmax, log_softmax, sum, exp, log, pow, rsqrt,
  layer_norm and nll_loss in fp32 (CPU autocast keeps them in the input's dtype);
- scaled_dot_product_attention picks a kernel by the card (aten/src/ATen/native/
  transformers/cuda/sdp_utils.cpp, `attention_kernel` below), and each keeps its own
  tensors for backward;
- dropout takes the fused kernel, whose mask is one byte a value (bool), where the CPU
  keeps a noise tensor in the input's dtype;
- LayerNorm on bf16 tensors keeps its mean and 1/σ in fp32 (the CUDA kernel's
  accumulation type), where the CPU keeps them in bf16.
"""

from __future__ import annotations

from calc.errors import FieldError

FP32_ON_CUDA = ("softmax", "log_softmax", "sum", "exp", "log", "pow", "rsqrt", "layer_norm", "logsumexp", "nll_loss")
"""Ops the implementations call that CUDA autocast runs in fp32 (AT_FORALL_FP32, and
AT_FORALL_FP32_SET_OPT_DTYPE for softmax, log_softmax and sum); CPU autocast does not."""
LOWERED_ON_BOTH = ("linear", "matmul", "addmm", "bmm", "scaled_dot_product_attention")
"""Ops autocast runs in bf16 on both devices (AT_FORALL_LOWER_PRECISION_FP on CUDA)."""
MASK_BYTES_ON_CUDA = 1
"""Bytes per value of a dropout mask on CUDA (native_dropout's bool mask)."""
RNG_STATE_BYTES = {"flash": 24, "efficient": 16, "cudnn": 16}
"""Bytes each attention call keeps of the RNG's state: the flash kernel a 2-element uint64
seed-and-offset tensor and an unused uint64 scalar, the memory-efficient and cuDNN kernels
an int64 seed and an int64 offset (an H200 kept 16 bytes a layer under cuDNN)."""
LOGSUMEXP_ROWS_ALIGNMENT = 32
"""The memory-efficient kernel pads its fp32 log-sum-exp to a multiple of 32 query rows."""
FLASH_MAX_HEAD_SIZE = 256
FLASH_HEAD_ALIGNMENT = 8
"""scaled_dot_product_attention pads Q, K and V to a multiple of 8 features per head
before the flash kernel (attention.cpp, pad_last_dim<8>), and slices its output back."""

ARCHES = {"sm70": "V100", "sm75": "T4", "sm80": "A100", "sm86": "A10, RTX 3090", "sm89": "L4, L40S, RTX 4090",
          "sm90": "H100, H200", "sm100": "B200", "sm120": "RTX 5090"}
"""NVIDIA compute capabilities the kernel rules are written for, with cards that have them."""
DEFAULT_ARCH = "sm90"
MEASURED_ARCH = "sm90"
"""The compute capability whose CUDA figures a GPU has measured (an H200)."""


def capability(arch: str) -> int:
    """The compute capability as a number: "sm90" -> 90."""
    return int(arch[2:])


def attention_kernel(d_head: int, dtype: str, arch: str = DEFAULT_ARCH, masked: bool = False, grouped: bool = False,
                     dropout: float = 0.0, keys: int = 2) -> str:
    """The kernel CUDA's scaled_dot_product_attention runs on a card of compute capability
    `arch` (sdp_utils.cpp, select_sdp_backend, in its order):

    - "cudnn" first on sm90 and sm100 (check_prefer_cudnn_attention): bf16, a head size
      that 8 divides and up to 256 on sm90 (128 on sm100), more than one key; it takes a
      mask, dropout and grouped K and V;
    - "flash" on sm80 and later: bf16, no mask, head sizes up to 256 (padded to a multiple
      of 8), but in training not (192, 224] on sm86, sm89 and sm120, nor above 224 with
      dropout there; it takes grouped K and V;
    - "efficient" (memory-efficient) on sm50 and later: fp32, or bf16 from sm80; a head size
      the GEMM alignment divides (8 in bf16; 4 in fp32 from sm80, any before); no grouped
      K and V;
    - "math", PyTorch's composite of matmuls and softmax, otherwise.

    `masked`: an explicit mask is passed (not is_causal); `grouped`: K and V have fewer
    heads than Q and are passed with enable_gqa; `keys`: the keys each query sees."""
    sm, half = capability(arch), dtype in ("bf16", "bf16-master")
    if sm in (90, 100) and half and d_head % 8 == 0 and d_head <= (256 if sm == 90 else 128) and keys > 1:
        return "cudnn"
    if sm >= 80 and half and not masked and d_head <= FLASH_MAX_HEAD_SIZE:
        if not (sm in (86, 89, 120) and (192 < d_head <= 224 or (d_head > 224 and dropout > 0))):
            return "flash"
    if not grouped and (sm >= 80 or not half) and d_head % (8 if half else 4 if sm >= 80 else 1) == 0:
        return "efficient"
    return "math"


def padded_head(d_head: int) -> int:
    """Features per head as the flash kernel gets them: padded to a multiple of 8."""
    return -(-d_head // FLASH_HEAD_ALIGNMENT) * FLASH_HEAD_ALIGNMENT


def check_kernel(kernel: str, supported: tuple[str, ...], why: str = "") -> None:
    """FieldError where SDPA would run a kernel whose saved tensors calc has not derived."""
    if kernel not in supported:
        raise FieldError("attention", f"on CUDA, scaled_dot_product_attention would run its {kernel} kernel here"
                                      f"{why}, whose saved tensors are not derived yet: choose explicit attention, "
                                      "another head size, or device cpu")
