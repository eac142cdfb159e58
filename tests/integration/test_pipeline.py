"""The whole pipeline on the real broker and Redis: one worker, its own topics, every rule."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from processor.routing import partition_for
from tests.integration.harness import (
    Deployment,
    WorkerProcess,
    event,
    eventually,
    produce,
    produce_events,
    read_topic,
)
from tests.unit.builders import SEED_EXAMPLE

pytestmark = pytest.mark.integration

#: The seed's own example event, exactly as the spec gives it.
SEED_EVENT: dict[str, Any] = json.loads(SEED_EXAMPLE)
PARTITIONS = 3
DATE = "2024-03-01T12:00:00"
#: Producer codecs of the compressed scenario.
COMPRESSED = ("lz4", "zstd", "gzip", "snappy")


def item(cost: str, quantity: int = 1, item_id: str = "sku-1") -> dict[str, Any]:
    return {
        "externalItemId": item_id,
        "name": "Thing",
        "quantity": quantity,
        "cost": cost,
        "url": "http://shop.test/i",
        "imageUrl": "http://shop.test/i.png",
    }


def created(order_id: str, total: str = "20.00", **params: Any) -> dict[str, Any]:
    return event(
        "orderCreated", order_id, totalCost=total, status="INITIALIZED", date=DATE, **params
    )


@pytest.fixture(scope="module")
def deployment(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Deployment:
    return Deployment(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("worker"),
        extra_env={
            "PROCESSOR_MAX_EVENT_BYTES": "20000",
            "PROCESSOR_CONTACT_ID_PARAMS": "token",
        },
    )


@pytest.fixture(scope="module")
def worker(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    contacts = tmp_path_factory.mktemp("contacts") / "contacts.csv"
    contacts.write_text(
        "id,externalCustomerId,email,phone,token\n"
        "c-ext,EXT1,Mixed.Case@Example.com,+100,\n"
        "c-seed,AV13760,,380501234567,\n"
    )
    result = deployment.run_cli("contacts", "import", str(contacts))
    assert result.returncode == 0, result.stderr
    assert "imported 2 contacts" in result.stdout

    w = WorkerProcess(deployment, tmp_path_factory.mktemp("logs") / "worker.log")
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def produced(
    deployment: Deployment, worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Contacts by topic first, then every scenario's events at once."""
    bootstrap = deployment.bootstrap
    produce(
        bootstrap,
        deployment.topic("contacts"),
        [
            (b"c-topic", json.dumps({"id": "c-topic", "email": "topic@example.com"}).encode()),
            (b"c-token", json.dumps({"id": "c-token", "token": "tok-1"}).encode()),
            (b"bad", b"{not json"),
        ],
    )
    store = redis.Redis.from_url(deployment.redis_url)
    prefix = deployment.env["REDIS_KEY_PREFIX"]
    eventually(
        lambda: (
            store.exists(f"{prefix}contact:c-token") and store.exists(f"{prefix}contact:c-topic")
        )
    )

    # The seed's example, through the CLI a producer team would use.
    seed_file = tmp_path_factory.mktemp("events") / "seed.jsonl"
    seed_file.write_text(json.dumps(SEED_EVENT) + "\n")
    result = deployment.run_cli("produce", str(seed_file))
    assert result.returncode == 0, result.stderr

    life = [
        created("o-life", email="mixed.case@EXAMPLE.com", items=[item("10.00", 2)]),
        event("orderUpdated", "o-life", currency="EUR", giftWrap="yes"),
        event("orderDelivered", "o-life"),
        event("orderUpdated", "o-life", totalCost="30.00", items=json.dumps([item("15.00", 2)])),
        event("orderCancelled", "o-life"),
        event("orderDelivered", "o-life"),
        event("orderDelivered", "o-life"),
    ]
    others = [
        event(
            "orderUpdated",
            "o-upd-new",
            totalCost="5",
            status="IN_PROGRESS",
            date=DATE,
            Phone="+100",
        ),
        created("o-token", Token="tok-1"),
        created("o-topic", EmailAddress="TOPIC@example.com"),
    ]
    drops = [
        {"eventTypeKey": "orderShipped", "params": [{"name": "externalOrderId", "value": "d-1"}]},
        event("orderCreated", "d-2", status="INITIALIZED", date=DATE, email="topic@example.com"),
        event("orderCreated", "d-3", totalCost="1", status="SHIPPED", date=DATE, Phone="+100"),
        created(
            "d-4", total="10", email="topic@example.com", items=[{**item("10"), "imageUrl": None}]
        ),
        event("orderDelivered", "d-5"),
        event("orderCancelled", "d-6"),
        created("d-7"),
        created("d-8", email="nobody@example.com"),
        created("d-9", email="topic@example.com", padding="x" * 30_000),
    ]
    produce_events(bootstrap, deployment.topic("orders_events"), life + others + drops)
    # Record batches of many events each, in every codec a producer may choose: the worker's
    # consumer must have each one's decompressor (aiokafka's extras).
    for codec in COMPRESSED:
        compressed = [created(f"o-{codec}-{n}", email="topic@example.com") for n in range(30)]
        produce_events(bootstrap, deployment.topic("orders_events"), compressed, codec)

    deep: Any = "bottom"
    for _ in range(40):
        deep = {"n": deep}
    raw_drops: list[tuple[bytes | None, bytes | None]] = [
        (b"d-raw-1", b"{not json"),
        (b"d-raw-2", b"\xff\xfe\x00garbage"),
        (b"d-raw-3", b"[1, 2, 3]"),
        (b"d-raw-4", json.dumps(created("d-raw-4", deep=deep)).encode()),
    ]
    produce(bootstrap, deployment.topic("orders_events"), raw_drops)

    # Misrouted events: no key, and a key that is not the order id, each on a partition that
    # does not own the order, so the processor must re-key them.
    for order_id, key in (("o-unkeyed", None), ("o-wrongkey", b"not-the-id")):
        owner = partition_for(order_id.encode(), PARTITIONS)
        value = json.dumps(created(order_id, email="topic@example.com")).encode()
        produce(
            bootstrap,
            deployment.topic("orders_events"),
            [(key, value)],
            partition=(owner + 1) % PARTITIONS,
        )


EXPECTED_DROPS = {
    "unsupported_event_type": 1,
    "missing_required": 1,
    "invalid_field": 1,
    "invalid_item": 1,
    "unknown_order": 2,
    "missing_contact": 1,
    "unknown_contact": 1,
    "too_large": 1,
    "malformed_json": 3,  # two on orders.events, one on contacts
    "invalid_event": 1,
    "too_deep": 1,
}


@pytest.fixture(scope="module")
def dead_letters(deployment: Deployment, produced: None) -> list[Any]:
    total = sum(EXPECTED_DROPS.values())
    topic = deployment.topic("orders_dlq")
    return eventually(
        lambda: (m := read_topic(deployment.bootstrap, topic)) and len(m) >= total and m,
        timeout=90,
    )


def test_every_drop_reason_is_dead_lettered_once(dead_letters: list[Any]) -> None:
    reasons: dict[str, int] = {}
    for message in dead_letters:
        reason = json.loads(message.value())["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    assert reasons == EXPECTED_DROPS


def test_dead_letter_keeps_original_bytes_and_source(
    dead_letters: list[Any], deployment: Deployment
) -> None:
    by_key = {m.key(): m for m in dead_letters}
    letter = by_key[b"d-raw-2"]
    value = json.loads(letter.value())
    assert value["reason"] == "malformed_json"
    assert base64.b64decode(value["valueBase64"]) == b"\xff\xfe\x00garbage"
    assert base64.b64decode(value["keyBase64"]) == b"d-raw-2"
    assert value["source"]["topic"] == deployment.topic("orders_events")
    assert isinstance(value["source"]["offset"], int)
    assert ("dlq.reason", b"malformed_json") in (letter.headers() or [])

    detail = {json.loads(m.value())["externalOrderId"]: json.loads(m.value()) for m in dead_letters}
    assert detail["d-2"]["detail"] == "totalCost"
    assert "items[0].imageUrl" in detail["d-4"]["detail"]
    assert "SHIPPED" in detail["d-3"]["detail"]


def test_seed_example_is_kept_and_flagged(worker: WorkerProcess, produced: None) -> None:
    order = eventually(lambda: worker.order("12345679"))
    assert order["status"] == "INITIALIZED"
    assert order["contactId"] == "c-seed"
    assert order["matchedBy"]["param"] == "externalCustomerId"
    # 258.0 against one item at 990: kept under the default policy, and marked.
    assert order["totalMismatch"] is True
    assert order["totalCost"] == "258.0"
    assert order["currency"] == "UAH"
    assert order["items"][0]["cost"] == "990"
    assert order["extra"]["phone"] == "380501234567"


def test_order_lifecycle_state(worker: WorkerProcess, dead_letters: list[Any]) -> None:
    order = eventually(lambda: (o := worker.order("o-life")) and o["version"] >= 6 and o)
    assert order["status"] == "DELIVERED"
    assert order["contactId"] == "c-ext"  # email matched case-insensitively
    assert order["matchedBy"] == {
        "param": "email",
        "field": "email",
        "value": "mixed.case@example.com",
    }
    assert order["currency"] == "EUR"
    assert order["extra"]["giftWrap"] == "yes"
    assert order["totalCost"] == "30.00"
    assert order["totalMismatch"] is False
    assert order["version"] == 6  # the second orderDelivered changed nothing
    assert [h["type"] for h in order["history"]] == [
        "orderCreated",
        "orderUpdated",
        "orderDelivered",
        "orderUpdated",
        "orderCancelled",
        "orderDelivered",
    ]


def test_rfm_records_for_deliver_change_cancel_and_redeliver(
    deployment: Deployment, worker: WorkerProcess, dead_letters: list[Any]
) -> None:
    eventually(lambda: (o := worker.order("o-life")) and o["version"] >= 6)

    def life_records() -> list[dict[str, Any]]:
        records = read_topic(deployment.bootstrap, deployment.topic("orders_rfm"))
        return [
            json.loads(m.value())
            for m in records
            if json.loads(m.value())["externalOrderId"] == "o-life"
        ]

    records = eventually(lambda: (r := life_records()) and len(r) >= 4 and r)
    assert [(r["op"], r["totalCost"], r["version"]) for r in records] == [
        ("delivered", "20.00", 3),
        ("delivered", "30.00", 4),
        ("revoked", "30.00", 5),
        ("delivered", "30.00", 6),
    ]
    assert {r["contactId"] for r in records} == {"c-ext"}
    assert records[1]["items"][0]["cost"] == "15.00"
    assert records[0]["currency"] == "EUR"


def test_orders_rfm_is_keyed_by_contact(deployment: Deployment, dead_letters: list[Any]) -> None:
    records = eventually(lambda: read_topic(deployment.bootstrap, deployment.topic("orders_rfm")))
    for message in records:
        assert message.key().decode() == json.loads(message.value())["contactId"]


def test_update_creates_missing_order(worker: WorkerProcess, produced: None) -> None:
    order = eventually(lambda: worker.order("o-upd-new"))
    assert order["status"] == "IN_PROGRESS"
    assert order["contactId"] == "c-ext"
    assert order["matchedBy"]["param"] == "Phone"


def test_contacts_from_topic_and_custom_identifier(worker: WorkerProcess, produced: None) -> None:
    assert eventually(lambda: worker.order("o-topic"))["contactId"] == "c-topic"
    token_order = eventually(lambda: worker.order("o-token"))
    assert token_order["contactId"] == "c-token"
    assert token_order["matchedBy"] == {"param": "Token", "field": "token", "value": "tok-1"}


def test_misrouted_events_are_rekeyed_and_applied(worker: WorkerProcess, produced: None) -> None:
    for order_id in ("o-unkeyed", "o-wrongkey"):
        order = eventually(lambda oid=order_id: worker.order(oid))  # type: ignore[misc]
        assert order["contactId"] == "c-topic"
        assert order["history"][0]["event"].startswith(
            worker.deployment.topic("orders_events_rekeyed")
        )
    status, stats = worker.get("/api/stats")
    assert status == 200
    assert stats["rekeyed"] >= 2


def test_compressed_events_are_applied(worker: WorkerProcess, produced: None) -> None:
    for codec in COMPRESSED:
        for n in (0, 29):
            order = eventually(lambda o=f"o-{codec}-{n}": worker.order(o))  # type: ignore[misc]
            assert order["contactId"] == "c-topic"


def test_unknown_order_is_404(worker: WorkerProcess) -> None:
    status, body = worker.get("/orders/no-such-order")
    assert status == 404
    assert body == {"error": "not_found", "externalOrderId": "no-such-order"}


def test_dashboard_shows_counters(worker: WorkerProcess, dead_letters: list[Any]) -> None:
    import urllib.request

    url = f"http://127.0.0.1:{worker.deployment.web_port}/dashboard"
    with urllib.request.urlopen(url, timeout=10) as response:
        page = response.read().decode()
    assert "Dead letters by reason" in page
    assert "unknown_order" in page


def test_contacts_import_rejects_bad_file(deployment: Deployment, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nsomeone@example.com\n")
    result = deployment.run_cli("contacts", "import", str(bad))
    assert result.returncode == 1
    assert "no 'id' column" in result.stderr
