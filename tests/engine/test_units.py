from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from calc.units import UNITS, in_unit, parse_size


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


@pytest.mark.parametrize("nbytes, unit, places, text", [
    (1_234_567_500_000, "GB", 3, "1,234.568 GB"),  # 1,234.5675: the 7 is odd, so up
    (1_234_566_500_000, "GB", 3, "1,234.566 GB"),  # 1,234.5665: the 6 is even, so it stays
    (1_234_566_500_001, "GB", 3, "1,234.567 GB"),  # a byte over the half: up
    (-1_500_000, "GB", 3, "-0.002 GB"),  # −0.0015: half-even on the size, the sign kept
    (-1, "GB", 3, "-0.000 GB"),
    (2_500_000_000, "GB", 0, "2 GB"), (3_500_000_000, "GB", 0, "4 GB"),
    (3 * 2**29, "GiB", 3, "1.500 GiB"),
    (2**30 + 536_871, "GiB", 3, "1.001 GiB"),  # 536,871 / 2^30 = 0.00050000008: over the half, up
    (2**30 + 536_870, "GiB", 3, "1.000 GiB"),  # 536,870 / 2^30 = 0.00049999915: under it
    (10**18, "B", 3, "1,000,000,000,000,000,000.000 B"),
])
def test_in_unit_rounds_the_exact_quotient(nbytes, unit, places, text):
    assert in_unit(nbytes, unit, places) == text


def test_trim_drops_only_trailing_zeros():
    assert in_unit(80 * 10**9, "GB", trim=True) == "80 GB"
    assert in_unit(84_447_000_000, "GB", trim=True) == "84.447 GB"
    assert in_unit(80_500_000_000, "GB", trim=True) == "80.5 GB"


@given(st.integers(-10**18, 10**18), st.sampled_from(sorted(UNITS)), st.integers(0, 4))
def test_in_unit_is_the_quotient_rounded_half_even_by_fractions(nbytes, unit, places):
    number, shown_unit = in_unit(nbytes, unit, places).split(" ")
    assert shown_unit == unit and number.count(".") == (1 if places else 0)
    assert Fraction(number.replace(",", "")) == round(Fraction(nbytes, UNITS[unit]), places)  # round(): half-even
