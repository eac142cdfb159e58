"""What the agent tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


def close_unstarted_consumer(app: Any) -> None:
    """Faust's consumer makes its thread's event loop when it is created, not when it starts.
    Here it never starts, so that loop would be left to the garbage collector, whose attempt to
    close it pytest reports as an error at exit (now and then)."""
    consumer = app._consumer
    if consumer is not None:
        consumer._thread.thread_loop.close()


async def settled(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for the agent to get there: a put returns once its event is taken, not done."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not get there in time")
