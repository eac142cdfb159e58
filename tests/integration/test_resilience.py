"""Crashes, restarts, a Redis that stops answering, a second worker: nothing is lost."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from processor.agents import EXIT_STATE_LOST
from tests.integration.harness import (
    Deployment,
    WorkerProcess,
    event,
    eventually,
    produce,
    produce_events,
    read_topic,
    uncommitted,
)
from tests.integration.test_pipeline import DATE, SEED_EVENT, item
from tests.servers import free_port, local_redis

pytestmark = pytest.mark.integration


def created(order_id: str, **params: Any) -> dict[str, Any]:
    return event(
        "orderCreated",
        order_id,
        totalCost="10.00",
        status="INITIALIZED",
        date=DATE,
        externalCustomerId="EXT-R",
        items=[item("10.00")],
        **params,
    )


def import_contact(deployment: Deployment, tmp: Path) -> None:
    contacts = tmp / "contacts.jsonl"
    contacts.write_text(
        json.dumps({"id": "c-r", "externalCustomerId": "EXT-R"})
        + "\n"
        + json.dumps({"id": "c-seed", "externalCustomerId": "AV13760"})
        + "\n"
    )
    result = deployment.run_cli("contacts", "import", str(contacts))
    assert result.returncode == 0, result.stderr


def rfm_for(deployment: Deployment, order_id: str) -> list[dict[str, Any]]:
    messages = read_topic(deployment.bootstrap, deployment.topic("orders_rfm"))
    values = [json.loads(m.value()) for m in messages]
    return [v for v in values if v["externalOrderId"] == order_id]


@pytest.fixture
def deployment(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> Deployment:
    d = Deployment(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        extra_env={"PROCESSOR_WEB_TOKEN": "s3cret"},
    )
    import_contact(d, tmp_path)
    return d


def test_state_survives_kill_9_and_restart(deployment: Deployment, tmp_path: Path) -> None:
    worker = WorkerProcess(deployment, tmp_path / "worker.log")
    worker.start()
    try:
        topic = deployment.topic("orders_events")
        produce_events(
            deployment.bootstrap,
            topic,
            [created("o-crash"), event("orderDelivered", "o-crash")],
        )
        eventually(lambda: (o := worker.order("o-crash")) and o["status"] == "DELIVERED")
        worker.kill()

        # Same disk: RocksDB holds the table; the changelog covers what it missed.
        # The kill may have come before the last changelog write or offset commit; either way the
        # event is consumed again, so wait for the state rather than for the first answer.
        worker.start()
        order = eventually(
            lambda: (o := worker.order("o-crash")) and o["status"] == "DELIVERED" and o
        )
        assert order["version"] == 2  # events replayed after the kill changed nothing

        produce_events(deployment.bootstrap, topic, [event("orderCancelled", "o-crash")])
        order = eventually(lambda: (o := worker.order("o-crash")) and o["version"] == 3 and o)
        assert order["status"] == "CANCELLED"
        worker.kill()

        # Lost disk: a new data directory, rebuilt from the changelog alone.
        fresh = WorkerProcess(deployment, tmp_path / "fresh.log", data_dir=tmp_path / "fresh")
        fresh.start()
        try:
            order = eventually(
                lambda: (o := fresh.order("o-crash")) and o["status"] == "CANCELLED" and o
            )
            assert order["version"] == 3
        finally:
            fresh.stop()
    finally:
        worker.stop()

    # Every op reached the feed; a replay may repeat a record, never lose or reorder one.
    ops = [(r["op"], r["version"]) for r in rfm_for(deployment, "o-crash")]
    assert sorted(set(ops), key=lambda op: op[1]) == [("delivered", 2), ("revoked", 3)]


def delivered_backlog(deployment: Deployment, prefix: str, orders: int) -> list[str]:
    """The topics, and a backlog of ``orders`` orders, each created then delivered; their ids."""
    created_topics = deployment.run_cli("topics", "create")
    assert created_topics.returncode == 0, created_topics.stderr
    ids = [f"{prefix}-{n}" for n in range(orders)]
    produce_events(
        deployment.bootstrap,
        deployment.topic("orders_events"),
        [e for order_id in ids for e in (created(order_id), event("orderDelivered", order_id))],
    )
    return ids


def test_a_graceful_stop_in_the_middle_of_a_backlog_loses_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    # SIGTERM while the worker is draining a backlog: it stops cleanly (exit 0) with part of
    # the backlog done, commits no more than it finished, and after the restart every order
    # reaches the RFM feed. (The ack order itself is pinned by tests/agents/test_streams.py.)
    ids = delivered_backlog(deployment, "o-stop", 5000)
    worker = WorkerProcess(deployment, tmp_path / "worker.log")
    worker.start()
    try:
        eventually(lambda: worker.get("/api/stats")[1]["applied"] >= 1000, every=0.05)
        worker.stop()
        assert worker.proc is not None and worker.proc.returncode == 0, worker.tail()
        assert len(rfm_order_ids(deployment)) < len(ids), "the worker was done before the stop"

        worker.start()
        eventually(lambda: rfm_order_ids(deployment) >= set(ids), every=2)
    finally:
        worker.stop()


@pytest.mark.parametrize(
    "consumer_thread", ["false", "true"], ids=["consumer-on-the-loop", "consumer-thread"]
)
def test_a_worker_joining_in_the_middle_of_a_backlog_loses_nothing(
    deployment: Deployment, tmp_path: Path, consumer_thread: str
) -> None:
    # A rebalance while the first worker drains a backlog: what it fetched for the partitions it
    # gives up (whole fetches in its agents' queues) is dropped unacked and read again from the
    # committed offset by the new owner, and the partitions it keeps are sought back to theirs
    # (Faust's recovery), so nothing fetched before that seek may be handed over after it, nor
    # anything fetched while it runs (a stalled commit, or events skipped). Every order reaches
    # the RFM feed, every offset is committed, and no event is taken out of its order (a
    # delivery before its creation would be dead-lettered as unknown_order).
    # Both ways of running the consumer (processor.transport): the rebalance is where they part.
    deployment.extra_env = {**deployment.extra_env, "PROCESSOR_CONSUMER_THREAD": consumer_thread}
    # Enough that the first worker is still at it when the second has joined, some 4 s after it
    # started: with 40,000 orders, it was done before in most runs on the loop.
    ids = delivered_backlog(deployment, "o-join", 120_000)
    first = WorkerProcess(deployment, tmp_path / "first.log")
    second = WorkerProcess(
        deployment,
        tmp_path / "second.log",
        web_port=free_port(),
        data_dir=tmp_path / "second-data",
    )
    first.start()
    try:
        eventually(lambda: first.get("/api/stats")[1]["applied"] >= 2000, every=0.05)
        mark = first.log_size()
        second.start()
        first.wait_log("Worker ready", after=mark)  # the first worker went through a rebalance
        assert len(rfm_order_ids(deployment)) < len(ids), "the first worker was done before"

        eventually(lambda: rfm_order_ids(deployment) >= set(ids), timeout=300, every=2)
        # Acked across the rebalance: the group's offsets reach the end of the events topic.
        group, events_topic = f"op-{deployment.tag}", deployment.topic("orders_events")
        eventually(lambda: uncommitted(deployment.bootstrap, group, events_topic) == 0, every=2)
        dead_letters = read_topic(deployment.bootstrap, deployment.topic("orders_dlq"))
        assert [m.value() for m in dead_letters] == []
        stats = [w.get("/api/stats")[1] for w in (first, second)]
        assert all(sum(s["events"].values()) > 0 for s in stats), stats  # both took part
        for order_id in ids[::1500]:
            order = eventually(lambda oid=order_id: first.order(oid))  # type: ignore[misc]
            assert order["status"] == "DELIVERED"
    finally:
        second.stop()
        first.stop()


def rfm_order_ids(deployment: Deployment) -> set[str]:
    messages = read_topic(deployment.bootstrap, deployment.topic("orders_rfm"))
    return {json.loads(m.value())["externalOrderId"] for m in messages}


def set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def test_records_kafka_refuses_stop_the_worker_and_are_sent_after_the_restart(
    deployment: Deployment, tmp_path: Path
) -> None:
    worker = WorkerProcess(deployment, tmp_path / "worker.log")
    worker.start()
    dlq = deployment.topic("orders_dlq")
    try:
        # A dead-letter topic that takes no dead letter: Kafka refuses the batch for good.
        set_topic_config(deployment.bootstrap, dlq, "max.message.bytes", "64")
        produce(deployment.bootstrap, deployment.topic("orders_events"), [(b"k-refused", b"{")])
        assert worker.proc is not None
        assert worker.proc.wait(60) == EXIT_STATE_LOST
    finally:
        worker.stop()
    assert read_topic(deployment.bootstrap, dlq) == []

    # The restart brings the topic's config back to the contract's, and the event, never
    # committed, is consumed again: its dead letter arrives after all.
    restarted = WorkerProcess(deployment, tmp_path / "restarted.log")
    restarted.start()
    try:
        letters = eventually(lambda: read_topic(deployment.bootstrap, dlq))
    finally:
        restarted.stop()
    assert [m.key() for m in letters] == [b"k-refused"]
    assert json.loads(letters[0].value())["reason"] == "malformed_json"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    home = tmp_path / "redis"
    with local_redis(home) as url:
        yield url, home


def test_redis_outage_delays_but_drops_nothing(
    kafka_bootstrap: str, own_redis: tuple[str, Path], tmp_path: Path
) -> None:
    redis_url, redis_home = own_redis
    deployment = Deployment(
        bootstrap=kafka_bootstrap,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        extra_env={"PROCESSOR_TOTAL_MISMATCH": "reject", "PROCESSOR_STORE": "memory"},
    )
    import_contact(deployment, tmp_path)
    worker = WorkerProcess(deployment, tmp_path / "worker.log")
    worker.start()
    redis_pid = int((redis_home / "redis.pid").read_text())
    try:
        # A frozen Redis: connections hang and time out, as in a network partition.
        os.kill(redis_pid, signal.SIGSTOP)
        mark = worker.log_size()
        produce_events(deployment.bootstrap, deployment.topic("orders_events"), [created("o-wait")])
        worker.wait_log("Redis unreachable during contact lookup", after=mark, timeout=60)
        assert worker.order("o-wait") is None
        dead_letters = read_topic(deployment.bootstrap, deployment.topic("orders_dlq"))
        assert [m.value() for m in dead_letters] == []
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    try:
        order = eventually(lambda: worker.order("o-wait"))
        assert order["contactId"] == "c-r"
        dead_letters = read_topic(deployment.bootstrap, deployment.topic("orders_dlq"))
        assert [m.value() for m in dead_letters] == []

        # The same worker runs with PROCESSOR_TOTAL_MISMATCH=reject: the seed's own example
        # (258.0 against an item at 990) is dead-lettered.
        produce_events(deployment.bootstrap, deployment.topic("orders_events"), [SEED_EVENT])
        letters = eventually(
            lambda: read_topic(deployment.bootstrap, deployment.topic("orders_dlq"))
        )
        letter = json.loads(letters[0].value())
        assert letter["reason"] == "total_mismatch"
        assert letter["externalOrderId"] == "12345679"
        assert "990" in letter["detail"]
    finally:
        worker.stop()


def test_two_workers_share_partitions_and_route_lookups(
    deployment: Deployment, tmp_path: Path
) -> None:
    first = WorkerProcess(deployment, tmp_path / "first.log")
    first.start()
    second = WorkerProcess(
        deployment,
        tmp_path / "second.log",
        # A port of its own that is free now: the first's plus one was once taken (a client's
        # ephemeral port) and the second worker could not start.
        web_port=free_port(),
        data_dir=tmp_path / "second-data",
    )
    try:
        mark = first.log_size()
        second.start()
        first.wait_log("Worker ready", after=mark)  # the first worker went through a rebalance
        ids = [f"o-two-{n}" for n in range(12)]
        produce_events(
            deployment.bootstrap, deployment.topic("orders_events"), [created(i) for i in ids]
        )
        # The token is required, and travels with a lookup routed to the other worker.
        anonymous = WorkerProcess(deployment, tmp_path / "unused.log", web_port=first.web_port)
        anonymous.env.pop("PROCESSOR_WEB_TOKEN")
        assert anonymous.get(f"/orders/{ids[0]}") == (401, {"error": "unauthorized"})
        # Faust's own pages too: /router/ lists which worker holds which partition.
        assert anonymous.get("/router/") == (401, {"error": "unauthorized"})
        assert first.get("/router/")[0] == 200
        assert anonymous.get("/") == (200, {"status": "OK"})
        for order_id in ids:
            # Whichever worker is asked, the one owning the order's partition answers.
            for w in (first, second):
                order = eventually(lambda w=w, oid=order_id: w.order(oid))  # type: ignore[misc]
                assert order["externalOrderId"] == order_id
    finally:
        second.stop()
        first.stop()
