"""Pyodide's memory snapshot without its empty pages.

Two thirds of the 31 MB snapshot are zero bytes, in long runs (memory never written, and
the free blocks hooks/make_snapshot.mjs zeroes). Leaving out every all-zero page cuts what
the browser downloads and inflates to about a third; docs/js/calc-worker.js puts the pages
back into a zeroed buffer of the full length.

Layout, little-endian: b"CSNP", u32 full length in bytes, u32 page size in bytes, u32 page
count n, then n bytes (1 where the page is stored, 0 where it is all zeros), then the stored
pages in order (the last page may be short).
"""

from __future__ import annotations

import struct

MAGIC = b"CSNP"
PAGE = 4096


def pack(memory: bytes, page: int = PAGE) -> bytes:
    """`memory` with its all-zero pages left out."""
    pages = [memory[at:at + page] for at in range(0, len(memory), page)]
    stored = [bool(p.strip(b"\0")) for p in pages]
    header = MAGIC + struct.pack("<III", len(memory), page, len(pages)) + bytes(stored)
    return header + b"".join(p for p, keep in zip(pages, stored) if keep)


def unpack(packed: bytes) -> bytes:
    """The full memory again (what the worker does, here for the tests)."""
    if packed[:4] != MAGIC:
        raise ValueError("not a sparse snapshot")
    length, page, count = struct.unpack_from("<III", packed, 4)
    flags = packed[16:16 + count]
    memory = bytearray(length)
    at = 16 + count
    for i, stored in enumerate(flags):
        if stored:
            size = min(page, length - i * page)
            memory[i * page:i * page + size] = packed[at:at + size]
            at += size
    if at != len(packed):
        raise ValueError("sparse snapshot has trailing or missing bytes")
    return bytes(memory)
