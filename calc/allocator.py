"""PyTorch's CUDA caching allocator: the block it hands a tensor, which is what
`torch.cuda.memory_allocated` and `max_memory_allocated` count.

From c10/cuda/CUDACachingAllocator.cpp (PyTorch 2.11 to 2.13, its default settings):

- a request is rounded up to a multiple of 512 bytes (`round_size`; kMinBlockSize);
- requests up to 1 MiB (kSmallSize) come from the small pool, whose segments are 2 MiB
  (kSmallBuffer) and are split down to the rounded size, so the block is the rounded size;
- larger requests come from the large pool: a new segment is 20 MiB (kLargeBuffer) for a
  request under 10 MiB (kMinLargeAlloc), else the request rounded up to a multiple of
  2 MiB (kRoundLarge) (`get_allocation_size`); a block is split only when more than
  1 MiB (kSmallSize) would remain (`should_split`), else the request gets the whole block.

So a tensor of 40,960,000 bytes (a 1,600 × 6,400 fp32 matrix) takes a 41,943,040-byte
segment whole (983,040 bytes would remain), while one of 10,240,000 bytes is split out of
a 20 MiB segment exactly. `block_bytes` gives the block a request gets from a new segment.
A request can instead be served from a cached free block (best fit, split by the same
rule), which may be up to 1 MiB larger than that, or smaller where a larger free block is
split: in a training loop's steady state most requests meet the blocks the same sizes left
the step before, and the snapshot of an H200 step showed each such W1 at 41,922,560 to
41,943,040 bytes. The allocator also keeps cuBLAS's workspace, allocated once a stream
(CublasHandlePool.cpp: 32 MiB on sm90, as the H200's snapshot showed; ":4096:2:16:8",
8,519,680 bytes, elsewhere).
"""

from __future__ import annotations

from calc.cuda import capability

KIB, MIB = 2**10, 2**20
MIN_BLOCK = 512
SMALL_SIZE = 1 * MIB
SMALL_SEGMENT = 2 * MIB
LARGE_SEGMENT = 20 * MIB
MIN_LARGE_ALLOC = 10 * MIB
ROUND_LARGE = 2 * MIB


def round_size(nbytes: int) -> int:
    """A request rounded as the allocator rounds it: up to a multiple of 512 bytes."""
    return max(MIN_BLOCK, -(-nbytes // MIN_BLOCK) * MIN_BLOCK)


def segment_bytes(rounded: int) -> int:
    """The segment cudaMalloc'd for a rounded request no cached block can serve."""
    if rounded <= SMALL_SIZE:
        return SMALL_SEGMENT
    if rounded < MIN_LARGE_ALLOC:
        return LARGE_SEGMENT
    return -(-rounded // ROUND_LARGE) * ROUND_LARGE


def block_bytes(nbytes: int) -> int:
    """Bytes of the block a tensor of `nbytes` takes from a new segment: what
    memory_allocated counts for it (0 for an empty tensor, which takes none)."""
    if nbytes <= 0:
        return 0
    rounded = round_size(nbytes)
    if rounded <= SMALL_SIZE:
        return rounded
    segment = segment_bytes(rounded)
    return rounded if segment - rounded > SMALL_SIZE else segment


def rounding(nbytes: int, count: int = 1) -> int:
    """Bytes the allocator adds to `count` tensors of `nbytes` each."""
    return count * (block_bytes(nbytes) - nbytes) if nbytes > 0 else 0


def cublas_workspace_bytes(arch: str) -> int:
    """cuBLAS's workspace, one block in the allocator once a matmul has run on the stream."""
    return 32 * MIB if capability(arch) == 90 else 4096 * KIB * 2 + 16 * KIB * 8
