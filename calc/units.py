"""Byte units, kept exact until the moment a number is shown.

GB = 10^9 bytes and GiB = 2^30 bytes; every figure the site prints names its unit.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

UNITS = {"GB": 10**9, "GiB": 2**30, "MB": 10**6, "MiB": 2**20, "B": 1}


def unit_bytes(unit: str) -> int:
    """Bytes in one `unit` ("GB", "GiB", …); ValueError for an unknown unit."""
    try:
        return UNITS[unit]
    except KeyError:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}") from None


def in_unit(nbytes: int, unit: str, places: int = 3, trim: bool = False) -> str:
    """`nbytes` in `unit`, rounded half-even to `places` decimals, e.g. '16.262 GB';
    with `trim`, trailing zeros go: '80 GB' rather than '80.000 GB'."""
    value = (Decimal(nbytes) / Decimal(unit_bytes(unit))).quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN)
    text = f"{value:,}"
    if trim and "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}"


def grouped(n: int) -> str:
    """An integer with thousands separators: 16262172672 -> '16,262,172,672'."""
    return f"{n:,}"


def parse_size(text: str) -> int:
    """Bytes in a size typed as '80 GB', '80GiB' or '1.5e9 B' (a bare number is GB).

    Exact for decimal input: '2.265 GB' is 2,265,000,000 bytes. ValueError otherwise.
    """
    cleaned = str(text).strip()
    unit = "GB"
    for name in sorted(UNITS, key=len, reverse=True):
        if cleaned.endswith(name):
            cleaned, unit = cleaned[: -len(name)].strip(), name
            break
    try:
        amount = Decimal(cleaned)
    except ArithmeticError:
        raise ValueError(f"not a size: {text!r} (try '80 GB' or '80 GiB')") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"a size must be a positive number, not {text!r}")
    nbytes = amount * unit_bytes(unit)
    if nbytes > Decimal(10) ** 18:
        raise ValueError(f"{text!r} is more than an exabyte; check the unit")
    return int(nbytes)
