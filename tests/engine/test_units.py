import pytest

from calc.units import in_unit, parse_size


@pytest.mark.parametrize("text, nbytes", [
    ("80 GB", 80 * 10**9), ("80GB", 80 * 10**9), ("80 GiB", 80 * 2**30), ("2.265 GB", 2_265_000_000),
    ("80", 80 * 10**9), ("512 MiB", 512 * 2**20), ("1e9 B", 10**9),
    ("80 gb", 80 * 10**9), ("80gib", 80 * 2**30), ("512 mib", 512 * 2**20),  # as people type them
])
def test_sizes_parse_exactly(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "GB", "-1 GB", "0", "nan GB", "inf", "1e30 GB", "eighty", "80 TB"])
def test_nonsense_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_rounding_is_half_even_and_labelled():
    assert in_unit(16_262_172_672, "GB") == "16.262 GB"
    assert in_unit(16_262_172_672, "GiB") == "15.145 GiB"
    assert in_unit(2_500_000, "GB", places=2) == "0.00 GB"  # 0.0025 rounds to even
