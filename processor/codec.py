"""JSON with orjson, money as decimal strings.

orjson reads JSON numbers as float and cannot write Decimal, so both directions go through here:
``dumps`` writes every Decimal as a string, and :func:`to_decimal` recovers the written value of
a number that orjson turned into a float.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from faust.serializers import codecs


def _default(obj: object) -> object:
    if isinstance(obj, Decimal):
        return decimal_str(obj)
    if isinstance(obj, (tuple, frozenset, set)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


#: Amounts and quantities beyond these bounds are not money but mistakes (or attacks: 1e999999
#: overflows the arithmetic). Within them, plain notation is always short.
MAX_INTEGER_DIGITS = 15
MAX_FRACTION_DIGITS = 12


def decimal_str(value: Decimal) -> str:
    """Plain notation, never exponent form: 1E+2 is written 100."""
    return format(value, "f")


def to_decimal(value: object) -> Decimal | None:
    """A JSON number or numeric string as Decimal; None when it is not a finite number within
    MAX_INTEGER_DIGITS before and MAX_FRACTION_DIGITS after the point.

    ``repr`` of a float is the shortest string that reads back to it, which for money-sized
    numbers is exactly what the producer wrote (19.99 stays 19.99, not 19.989999...).
    """
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, str):
            result = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    if not result.is_finite() or result.adjusted() >= MAX_INTEGER_DIGITS:
        return None
    if _fraction_digits(result) > MAX_FRACTION_DIGITS:
        return None
    return result


def _fraction_digits(value: Decimal) -> int:
    """Minus the exponent of a finite Decimal, read from ``str`` (``as_tuple`` costs three times
    as much, and this runs for every amount): "1.50" -> 2, "1.23E-15" -> 17, "1E+2" -> -2."""
    mantissa, _, exponent = str(value).partition("E")
    return len(mantissa.partition(".")[2]) - (int(exponent) if exponent else 0)


class OrjsonCodec(codecs.Codec):
    """Faust codec for the records we write (table values, rfm, dead letters)."""

    def _dumps(self, obj: Any) -> bytes:
        return dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return loads(s)


CODEC_NAME = "orjson"


def register_faust_codec() -> None:
    # Faust's own "json" codec uses the stdlib at run time; ours is faster and knows Decimal.
    codecs.register(CODEC_NAME, OrjsonCodec())
