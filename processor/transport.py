"""Faust's Kafka transport, with the consumer's fetch wait bounded.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and no setting to change it.
aiokafka keeps one fetch request in flight per broker, and leaves out of it every partition whose
fetched records have not been consumed yet; once those records are older than its prefetch
backoff (100 ms) it sends a request for the remaining partitions anyway. When those are all quiet
(the re-key and contacts topics, usually), the broker holds the request for the whole wait, and
the busy partitions cannot be fetched until it returns: events sat up to 1.5 s before the agent
saw them (bench/PROFILE.md). With the wait bounded, such a request comes back within
:data:`FETCH_MAX_WAIT_MS`; an idle worker sends a few more fetch requests a second, which costs
nothing worth measuring.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

FETCH_MAX_WAIT_MS = 20


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher, after this returns.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):
    Consumer = Consumer
