"""Money in and out of JSON: :func:`processor.codec.to_decimal` and ``dumps``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor import codec


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (19.99, "19.99"),
        (2, "2"),
        (" 5.50 ", "5.50"),
        ("0.000000000001", "0.000000000001"),  # 12 fraction digits: the most there may be
        ("1E-12", "0.000000000001"),
        ("1E+2", "100"),
        ("-3", "-3"),  # the sign is the caller's rule (amounts, quantities)
        ("999999999999999", "999999999999999"),  # 15 integer digits
    ],
)
def test_numbers_within_bounds_are_read_exactly(value: object, expected: str) -> None:
    result = codec.to_decimal(value)
    assert result is not None
    assert codec.decimal_str(result) == expected


@pytest.mark.parametrize(
    "value",
    [
        "0.0000000000001",  # 13 fraction digits
        "1.0000000000000",  # trailing zeros count: they are digits the producer wrote
        "1E-13",
        "12.5E-12",
        "1000000000000000",  # 16 integer digits
        "1E+15",
        "1e999999",
        "NaN",
        "Infinity",
        "-inf",
        "twelve",
        "",
        True,
        None,
        [1],
        {"amount": 1},
    ],
)
def test_numbers_out_of_bounds_or_not_numbers_are_refused(value: object) -> None:
    assert codec.to_decimal(value) is None


@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: d.adjusted() < 40
    )
)
def test_fraction_bound_is_the_exponent_bound(value: Decimal) -> None:
    # Whatever notation str() picks for it, a number is refused exactly when it has more
    # fraction digits (a lower exponent) than MAX_FRACTION_DIGITS.
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    in_bounds = (
        exponent >= -codec.MAX_FRACTION_DIGITS and value.adjusted() < codec.MAX_INTEGER_DIGITS
    )
    assert (codec.to_decimal(str(value)) is not None) == in_bounds


def test_dumps_writes_decimals_as_plain_strings() -> None:
    assert codec.dumps({"cost": Decimal("1E+2"), "items": (Decimal("0.10"),)}) == (
        b'{"cost":"100","items":["0.10"]}'
    )
