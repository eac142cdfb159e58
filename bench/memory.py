"""Worker memory with a large table (issue #4: RSS <= 400 MB with 1,000,000 orders on RocksDB).

    .venv/bin/python -m bench.memory --orders 1000000

Loads one orderCreated per order (the load generator's ~1 KB events), lets the real worker
drain them on its default RocksDB store, and reports the worker's peak RSS against the number of
orders in the table. Progress lines carry the RSS as it goes, so a cut-short run still tells.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bench import loadgen
from bench.infra import Deployment, Offsets, compiled_build, log, new_tag, servers
from bench.worker import Worker, count_orders, disk_bytes
from processor.directory import ContactDirectory
from processor.producer import EventProducer

MB = 1024 * 1024


def _events(orders: int, contacts: int) -> Iterator[tuple[bytes, bytes]]:
    factory = loadgen.EventFactory(random.Random(loadgen.DEFAULT_SEED), contacts)
    for n in range(orders):
        order_id = f"m{n:08d}"
        yield order_id.encode(), factory.created(order_id)


async def _import_contacts(redis_url: str, prefix: str, count: int) -> None:
    directory = ContactDirectory.from_url(redis_url, prefix)
    try:
        await directory.upsert_many(loadgen.contacts(count))
    finally:
        await directory.close()


def run(
    orders: int, contacts: int, partitions: int, work_dir: Path, out: Path, *, pure: bool = False
) -> dict[str, object]:
    # A run of its own: a table directory left by another run holds that run's changelog offsets,
    # which Faust rightly refuses against this run's new changelog topic.
    tag = new_tag()
    work_dir = work_dir.resolve() / tag
    work_dir.mkdir(parents=True, exist_ok=True)
    build = None if pure else compiled_build()  # before the servers: they would idle through it
    with servers(work_dir) as srv:
        deployment = Deployment(srv, work_dir, partitions, tag=tag, build=build)
        deployment.create_topics()
        try:
            asyncio.run(_import_contacts(srv.redis_url, deployment.redis_prefix, contacts))
            log(f"producing {orders:,} orderCreated events")
            EventProducer(srv.bootstrap).send_all(
                deployment.events_topic,
                _events(orders, contacts),
                progress=lambda n: log(f"  produced {n:,}"),
            )
            worker = Worker(deployment)
            worker.start()
            offsets = Offsets(srv.bootstrap, deployment.app_id)
            high = sum(offsets.high(deployment.events_topic).values())
            started = time.monotonic()
            try:
                while True:
                    done = sum(offsets.committed(deployment.events_topic).values())
                    assert worker.memory is not None
                    log(f"  {done:,}/{high:,} events, RSS {worker.memory.sample() / MB:.0f} MB")
                    if done >= high:
                        break
                    time.sleep(10)
                seconds = time.monotonic() - started
                assert worker.memory is not None
                peak = worker.memory.overall_peak
                settled = worker.memory.sample()
            finally:
                offsets.close()
                worker.stop()
            result: dict[str, object] = {
                "orders": orders,
                "tableOrders": count_orders(deployment.data_dir),
                "tableDiskMb": round(disk_bytes(deployment.data_dir) / MB, 1),
                "peakRssMb": round(peak / MB, 1),
                "rssAtEndMb": round(settled / MB, 1),
                "eventsPerSecond": round(orders / seconds, 1),
                "partitions": partitions,
                "build": "pure-python" if build is None else "compiled",
                "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        finally:
            deployment.cleanup()
            shutil.rmtree(deployment.data_dir, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders to create")
    parser.add_argument("--contacts", type=int, default=10_000, help="contacts in Redis")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic")
    parser.add_argument(
        "--pure-python",
        action="store_true",
        help="run the worker on the source as it is, not on the compiled build",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("bench/out/memory"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory.json"))
    args = parser.parse_args(argv)
    result = run(
        args.orders,
        args.contacts,
        args.partitions,
        args.work_dir,
        args.out,
        pure=args.pure_python,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
