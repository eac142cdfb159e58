"""The pure core runs compiled (setup.py, deploy/local/compile.sh) where it is meant to, and as
source everywhere else: `make test` runs the unit and agent tests once on each, and each pass
must be testing what it says."""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPILED: list[str] = runpy.run_path(str(ROOT / "setup.py"), run_name="setup")["COMPILED"]
#: Set by `make test` for its pass over the compiled build.
EXPECT_COMPILED = os.environ.get("PROCESSOR_TEST_COMPILED") == "1"


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


@pytest.mark.parametrize("path", COMPILED)
def test_each_module_runs_as_this_pass_says(path: str) -> None:
    assert (ROOT / path).is_file(), f"setup.py compiles {path}, which does not exist"
    module = importlib.import_module(_module(path))
    compiled = isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader)
    if EXPECT_COMPILED:
        assert compiled, f"{module.__name__} ran from {module.__file__}, not the compiled build"
    else:
        # A stray extension in the source tree would shadow every later edit of its source.
        assert not compiled, f"{module.__name__} ran from {module.__file__}: remove it"
        assert Path(module.__file__ or "").resolve() == ROOT / path


def test_no_other_module_is_compiled() -> None:
    # An extension left over from a module since removed or uncompiled would be imported in its
    # place (compile.sh once picked one up from setuptools' build directory).
    import processor

    package = Path(processor.__file__ or "").parent
    found = {
        path.name.split(".")[0]
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
        for path in package.glob(f"*{suffix}")
    }
    expected = {Path(p).stem for p in COMPILED} if EXPECT_COMPILED else set()
    assert found == expected


def test_the_worker_says_which_build_it_runs() -> None:
    from processor.cli import core_build

    assert core_build() == ("compiled" if EXPECT_COMPILED else "interpreted")


def test_the_compiled_modules_wire_in_nothing() -> None:
    # Compiled calls bind their targets at build time, so the modules that wire in Faust, Kafka or
    # Redis (and that tests reach into) stay interpreted.
    wiring = {"agents", "app", "cli", "directory", "streams", "table", "transport", "web"}
    assert not wiring & {_module(p).rpartition(".")[2] for p in COMPILED}
