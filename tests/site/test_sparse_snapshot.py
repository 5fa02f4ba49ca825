"""The snapshot's sparse form (hooks/sparse_snapshot.py): all-zero pages left out, every
other byte kept in place."""

from __future__ import annotations

import pytest

from hooks.sparse_snapshot import MAGIC, pack, unpack


def test_zero_pages_are_left_out_and_come_back():
    page = 4096
    memory = b"\x01" * page + bytes(page) + b"\x00" * 100 + b"\x02" + bytes(page - 101) + b"\x03" * 10
    packed = pack(memory, page)
    # header 16 bytes + one flag a page (4 pages: 3 full, 1 of 10 bytes) + pages 1, 3 and 4
    assert len(packed) == 16 + 4 + page + page + 10
    assert packed[:4] == MAGIC and packed[16:20] == bytes([1, 0, 1, 1])
    assert unpack(packed) == memory


def test_memory_of_zeros_packs_to_its_header():
    assert len(pack(bytes(3 * 4096))) == 16 + 3
    assert unpack(pack(bytes(3 * 4096))) == bytes(3 * 4096)


def test_a_truncated_snapshot_is_refused():
    packed = pack(b"\x05" * 5000)
    with pytest.raises(ValueError):
        unpack(packed[:-1])
    with pytest.raises(ValueError):
        unpack(b"XXXX" + packed[4:])
