"""Value objects immutable to the type checker, plain slotted dataclasses at run time.

Every event builds a dozen of them (the event, the order read back and the new one, its
transition, outputs), and a frozen dataclass sets each field through ``object.__setattr__``:
six times the cost of a plain one (~2 us against ~0.35 us for eight fields), ~5% of the
worker (bench/PROFILE.md, session 5). So the freezing is left to mypy, which runs with the
tests and rejects any assignment to a field of a ``@immutable`` class; at run time they are
``@dataclass(slots=True)`` with the hash a frozen one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True)
def immutable(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
