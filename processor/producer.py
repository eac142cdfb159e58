"""Producing Generate events the way the processor expects them: keyed by externalOrderId and
partitioned with murmur2, so each order's events land on the partition that owns its state."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import orjson
from confluent_kafka import KafkaException, Producer

from processor.errors import Unavailable


def order_key(line: bytes) -> bytes | None:
    """The externalOrderId of a Generate event as key bytes, or None when it has none."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    params = doc.get("params") if isinstance(doc, dict) else None
    if not isinstance(params, list):
        return None
    for param in params:
        if isinstance(param, dict) and param.get("name") == "externalOrderId":
            value = param.get("value")
            if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                return str(value).encode()
    return None


class EventProducer:
    def __init__(self, bootstrap: str, **config: object) -> None:
        self.bootstrap = bootstrap
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                # librdkafka's default (CRC32) would put keys on other partitions than Kafka's
                # Java client and Faust do; murmur2_random is the Java-compatible one.
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 20,
                "compression.type": "lz4",
                **config,
            }
        )
        self._errors: list[str] = []

    def check(self, timeout: float = 10.0) -> None:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {self.bootstrap} does not answer: {exc}") from None

    def _on_delivery(self, err: object, _msg: object) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send_all(
        self,
        topic: str,
        records: Iterable[tuple[bytes | None, bytes]],
        *,
        progress: Callable[[int], None] | None = None,
        every: int = 100_000,
        timeout: float = 60.0,
    ) -> int:
        self.check()
        sent = 0
        for key, value in records:
            while True:
                try:
                    self._producer.produce(
                        topic, value=value, key=key, on_delivery=self._on_delivery
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)  # queue full: let deliveries drain
            sent += 1
            if progress and sent % every == 0:
                progress(sent)
            self._producer.poll(0)
        remaining = self._producer.flush(timeout)
        if remaining or self._errors:
            raise Unavailable(
                f"{remaining} events not delivered, {len(self._errors)} failed"
                + (f": {self._errors[0]}" if self._errors else "")
            )
        return sent
