"""The README is a newcomer's path: it must stay true to the code."""

from __future__ import annotations

from pathlib import Path

from processor.reasons import Reason
from processor.settings import describe

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    missing = [env for env, _default, _help in describe() if f"`{env}`" not in README]
    assert missing == []


def test_readme_documents_every_reason_code() -> None:
    missing = [reason.value for reason in Reason if f"`{reason.value}`" not in README]
    assert missing == []


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "make test" in README
    assert "make test" in ci
