"""GPUs by the memory their driver reports, and what a training step may use of it.

A card sold as "80 GB" reports 81,559 MiB (H100) or 81,920 MiB (A100) to `nvidia-smi`:
the figures below are those totals, each with where it was seen. Of that total, the CUDA
context (the driver's and the kernels' own memory: cuBLAS and cuDNN workspaces among
them) and the caching allocator's slack are not available to tensors; calc takes a stated,
editable reserve off the top (`reserve`, 1 GiB unless set), and compares a step's peak of
allocated bytes — what `torch.cuda.max_memory_allocated()` reports — with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20
DEFAULT_GPU = "h100-80gb"
DEFAULT_RESERVE = "1 GiB"
"""The memory a step cannot use, by default: an assumption, which a reader can replace
with theirs (the total from nvidia-smi less what torch.cuda.mem_get_info() says is free
before the first tensor)."""
DEFAULT_FRAGMENTATION = "5 %"
"""The share of the card kept free for what the caching allocator reserves beyond its
blocks: on an H200, whole steps of the seed's model at batch 1 to 8 reserved 0.6 to 6.6 GB
more than they allocated (max_memory_reserved against max_memory_allocated), at most 4.4 %
of the card's 150.8 GB; 5 % covers that. An assumption: set yours."""

_MODAL = "nvidia-smi totals listed in modal-labs/modal-client pull request #2797"


@dataclass(frozen=True)
class Gpu:
    """A card: its name, the memory its driver reports (MiB), where that figure is from, its
    compute capability (which decides the attention kernel; NVIDIA's CUDA GPU list), and
    the article a sentence puts before its name."""

    name: str
    mib: int
    source: str
    arch: str
    article: str = "an"

    @property
    def nbytes(self) -> int:
        return self.mib * MIB


GPUS: dict[str, Gpu] = {
    "a100-40gb": Gpu("A100 40GB", 40960, _MODAL, "sm80"),
    "a100-80gb": Gpu("A100 80GB", 81920, _MODAL, "sm80"),
    "h100-80gb": Gpu("H100 80GB", 81559, _MODAL + "; NVIDIA/nccl issue #1264 (H100 80GB HBM3, SXM)", "sm90"),
    "h200": Gpu("H200", 143771, "nvidia-smi in NVIDIA/cuda-samples issue #311 (H200 SXM, 700 W)", "sm90"),
    "l4": Gpu("L4", 23034, _MODAL, "sm89"),
    "l40s": Gpu("L40S", 46068, _MODAL, "sm89"),
    "a10": Gpu("A10", 23028, _MODAL, "sm86"),
    "t4": Gpu("T4", 15360, _MODAL, "sm75", "a"),
    "rtx-3090": Gpu("RTX 3090", 24576, "nvidia-smi in noonghunna/club-3090 issue #390", "sm86"),
    "rtx-4090": Gpu("RTX 4090", 24564, "nvidia-smi in RLinf/RLinf issue #255", "sm89"),
    "rtx-5090": Gpu("RTX 5090", 32607, "nvidia-smi in noonghunna/club-3090 issue #1229", "sm120"),
}
"""The cards calc knows, by the name the inputs use."""
