"""What the agent tests share."""

from __future__ import annotations

from typing import Any


def close_unstarted_consumer(app: Any) -> None:
    """Faust's consumer makes its thread's event loop when it is created, not when it starts.
    Here it never starts, so that loop would be left to the garbage collector, whose attempt to
    close it pytest reports as an error at exit (now and then)."""
    consumer = app._consumer
    if consumer is not None:
        consumer._thread.thread_loop.close()
