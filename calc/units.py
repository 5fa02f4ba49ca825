"""Byte units, kept exact until the moment a number is shown.

GB = 10^9 bytes and GiB = 2^30 bytes; every figure the site prints names its unit.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

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


MAX_SIZE_TEXT = 40
"""The longest size text accepted, in characters ('2.265 GB' is 8)."""
MAX_BYTES = 10**18
"""The largest size accepted: an exabyte, far beyond any GPU or model."""
_NUMBER = re.compile(r"(?P<whole>[0-9]*)(?:\.(?P<fraction>[0-9]*))?(?:[eE](?P<exponent>[+-]?[0-9]{1,3}))?")


def parse_size(text: str) -> int:
    """Bytes in a size typed as '80 GB', '80GiB' or '1.5e9 B' (a bare number is GB)."""
    return parse_size_as_typed(text)[0]


def parse_size_as_typed(text: str, least: int = 1) -> tuple[int, str]:
    """(bytes, unit as typed) of a size such as '2.265 GB', '2265 MB' or '15.15 GiB'.

    Exact: the decimal is read as a fraction, never a float ('2.265 GB' is 2,265,000,000
    bytes); a part of a byte is dropped. A bare number is GB; a unit in any case is the
    unit ('80 gb' is 80 GB, its unit written GB). ValueError for anything
    else, under `least` bytes (one, unless 0 is allowed), or over an exabyte, with a
    message that quotes at most MAX_SIZE_TEXT characters of the text.
    """
    cleaned = str(text).strip()
    if len(cleaned) > MAX_SIZE_TEXT:
        raise ValueError(f"a size is at most {MAX_SIZE_TEXT} characters, such as '80 GB'")
    unit = "GB"
    for name in sorted(UNITS, key=len, reverse=True):  # in any case: '80 gb' is 80 GB
        if cleaned.lower().endswith(name.lower()):
            cleaned, unit = cleaned[: -len(name)].strip(), name
            break
    number = _NUMBER.fullmatch(cleaned)
    if not cleaned or not number or not (number["whole"] or number["fraction"]):
        hint = " (write decimals with a point and no thousands separator)" if "," in cleaned else ""
        raise ValueError(f"not a size: {str(text).strip()!r}{hint}; try '80 GB' or '80 GiB'")
    digits = (number["whole"] or "") + (number["fraction"] or "")
    amount = Fraction(int(digits), 10 ** len(number["fraction"] or "")) * Fraction(10) ** int(number["exponent"] or 0)
    nbytes = amount * unit_bytes(unit)
    if nbytes < least or (least and nbytes < 1):
        raise ValueError(f"{str(text).strip()!r} is less than one byte")
    if nbytes > MAX_BYTES:
        raise ValueError(f"{str(text).strip()!r} is more than an exabyte; check the unit")
    return int(nbytes), unit


def size_text(nbytes: int) -> str:
    """A size as a reader would type it: '80 GB', '80 GiB', '512 MiB', or exact bytes."""
    for unit, size in (("GiB", 2**30), ("GB", 10**9), ("MiB", 2**20), ("MB", 10**6)):
        if nbytes % size == 0:
            return f"{nbytes // size} {unit}"
    return f"{nbytes} B"
