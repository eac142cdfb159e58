"""The package's build, for what ``pyproject.toml`` cannot say: with ``PROCESSOR_COMPILE=1`` its
pure core is compiled by mypyc into C extensions, the way the container image runs it.

Those modules are plain, fully annotated Python with no I/O; compiled, they need ~40% less CPU,
8-11% of the worker's CPU an event (bench/PROFILE.md, session 6). Without the variable (a
developer's editable install) nothing is compiled, so an edit takes effect at once.
``deploy/local/compile.sh`` builds the compiled package beside the source tree, for the tests'
compiled pass and the benchmark.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup

#: The pure core: parsing, validation, state transitions, encoding, routing. Not the modules that
#: wire in Faust, Kafka or Redis: they spend their time in those libraries, and their tests swap
#: module attributes, which compiled calls do not look up.
COMPILED = [
    "processor/reasons.py",
    "processor/errors.py",
    "processor/codec.py",
    "processor/events.py",
    "processor/contacts.py",
    "processor/orders.py",
    "processor/deadletters.py",
    "processor/routing.py",
    "processor/outbox.py",
]


#: The commands that only write the package's metadata, which the extensions do not change.
METADATA_ONLY = {"dist_info", "egg_info"}


def ext_modules() -> list[Any]:
    if os.environ.get("PROCESSOR_COMPILE", "").lower() not in ("1", "true", "yes"):
        return []
    if METADATA_ONLY & set(sys.argv[1:]):
        # A build runs this file once for the metadata, then again for the wheel; mypycify
        # type-checks and writes the C code each time it is called (~20 s).
        return []
    from mypyc.build import mypycify

    return mypycify(COMPILED, opt_level="3")


# setuptools runs this file as __main__; tests/unit/test_compiled.py imports it for COMPILED.
if __name__ == "__main__":
    setup(ext_modules=ext_modules())
