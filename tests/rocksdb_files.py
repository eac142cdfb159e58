"""What RocksDB itself says it opened a database with, read from the files it writes beside it:
the options it persisted (``OPTIONS-*``) and those it only logs (``LOG``)."""

from __future__ import annotations

from pathlib import Path


def options_file(db_path: Path) -> dict[str, str]:
    """The latest OPTIONS file's ``name=value`` pairs (section headers left out)."""
    [path] = sorted(db_path.glob("OPTIONS-*"))[-1:]
    pairs = (line.strip().partition("=") for line in path.read_text().splitlines())
    return {key: value for key, _, value in pairs if value and not key.startswith("[")}


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
