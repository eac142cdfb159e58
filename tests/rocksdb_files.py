"""What RocksDB itself says it opened a database with, read from the files it writes beside it:
the options it persisted (``OPTIONS-*``) and those it only logs (``LOG``)."""

from __future__ import annotations

from pathlib import Path


def options_file(db_path: Path, column_family: str = "default") -> dict[str, str]:
    """The latest OPTIONS file's ``name=value`` pairs: the database's, and one column family's
    (section headers left out; the other column families' sections too)."""
    [path] = sorted(db_path.glob("OPTIONS-*"))[-1:]
    pairs: dict[str, str] = {}
    wanted = True
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            # [DBOptions], [CFOptions "name"], [TableOptions/BlockBasedTable "name"], ...
            wanted = '"' not in line or line.endswith(f' "{column_family}"]')
            continue
        key, _, value = line.partition("=")
        if wanted and value:
            pairs[key] = value
    return pairs


def logged_option(db_path: Path, name: str) -> str:
    """The value RocksDB's LOG gave ``Options.<name>`` at the latest open, e.g. a rate
    limiter's address or ``(nil)``: some options are logged but not persisted."""
    prefix = f"Options.{name}:"
    values = [
        line.split(prefix, 1)[1].strip()
        for line in (db_path / "LOG").read_text().splitlines()
        if prefix in line
    ]
    return values[-1]
