"""The worker's Kafka consumer waits at most FETCH_MAX_WAIT_MS on a fetch, not Faust's 1.5 s."""

from __future__ import annotations

from pathlib import Path

from processor import transport
from processor.app import create_app
from processor.settings import Settings, Store


async def test_the_worker_consumer_is_built_with_the_bounded_fetch_wait(tmp_path: Path) -> None:
    processor = create_app(
        Settings(store=Store.MEMORY, data_dir=tmp_path, kafka_bootstrap_servers="127.0.0.1:1")
    )
    app = processor.app
    assert isinstance(app.transport, transport.Transport)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert isinstance(thread, transport.ConsumerThread)
        assert consumer._fetch_max_wait_ms == transport.FETCH_MAX_WAIT_MS
        assert transport.FETCH_MAX_WAIT_MS < 1500
    finally:
        await consumer.stop()
        # The consumer thread makes its own event loop at once; it never ran, so close it here.
        thread.thread_loop.close()
