"""``@immutable`` value objects: frozen for mypy (which runs with the tests), plain and fast at
run time, hashable by value as a frozen dataclass is."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api as mypy_api

from processor.contacts import Identifier
from processor.orders import Source

ROOT = Path(__file__).resolve().parents[2]


def test_equal_values_are_equal_and_hash_alike() -> None:
    assert Source("t", 1, 2) == Source("t", 1, 2)
    assert len({Source("t", 1, 2), Source("t", 1, 2), Source("t", 1, 3)}) == 2
    email = Identifier("email", "email", "a@b.c")
    assert hash(email) == hash(Identifier("email", "email", "a@b.c"))


def test_assigning_a_field_fails_type_checking(tmp_path: Path) -> None:
    module = tmp_path / "mutates.py"
    module.write_text(
        textwrap.dedent(
            """
            from processor.orders import Source

            source = Source("t", 1, 2)
            source.offset = 3
            """
        )
    )
    stdout, _, status = mypy_api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", str(module)]
    )
    assert status == 1
    assert 'Property "offset" defined in "Source" is read-only' in stdout
