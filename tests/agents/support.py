"""What the agent tests share."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from processor.app import Processor, create_app
from processor.settings import Settings, Store


def close_unstarted_consumer(app: Any) -> None:
    """Faust's consumer thread makes its event loop when it is created, not when it starts.
    Here it never starts, so that loop would be left to the garbage collector, whose attempt to
    close it pytest reports as an error at exit (now and then). The consumer on the worker's
    loop (the default, processor.transport.InLoopConsumer) has no loop of its own to close."""
    consumer = app._consumer
    if consumer is not None and consumer._thread.thread_loop is not consumer._thread.parent_loop:
        consumer._thread.thread_loop.close()


@contextmanager
def offline_processor(
    data_dir: Path, *, directory: Any = None, **settings: Any
) -> Iterator[Processor]:
    """The wired processor, on the memory store unless ``settings`` say otherwise, whose Kafka
    is never contacted (nothing here starts the app)."""
    processor = create_app(
        Settings(
            **{
                "store": Store.MEMORY,
                "data_dir": data_dir,
                "kafka_bootstrap_servers": "127.0.0.1:1",
                **settings,
            }
        ),
        directory=directory,
    )
    try:
        yield processor
    finally:
        close_unstarted_consumer(processor.app)


async def settled(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for the agent to get there: a put returns once its event is taken, not done."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the agent did not get there in time")
