"""The order-processor benchmark (issue #4), phase by phase:

0. contacts into Redis, fresh topics, the backlog onto the events topic;
1. ceiling: a plain aiokafka consumer/producer relays the backlog (no Redis, no table);
2. the real worker on the same backlog, until its committed offsets reach the end;
3. with that worker still running, open-loop load at fractions of its phase-2 rate, timing
   each record's output.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from bench import brokergc, latency, loadgen, phases, report
from bench.infra import (
    RUN_SETTINGS,
    Deployment,
    Offsets,
    Servers,
    compiled_build,
    log,
    new_tag,
    servers,
)
from bench.worker import Worker

HERE = Path(__file__).resolve().parent


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown, and the phase list kept as written."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog="Kafka and Redis come from KAFKA_BOOTSTRAP_SERVERS and REDIS_URL when set; "
        "otherwise local ones are started (deploy/local/) and stopped at the end.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the backlog")
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts in Redis")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=30.0,
        help="seconds of open-loop load per level (0 skips phase 3)",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=10.0,
        help="seconds of load at the start of each level, before its --latency-seconds: sent "
        "and timed like the rest, reported apart and not counted in the level's percentiles "
        "(after the backlog the broker's JIT compiler took up to half a core for ~10 s)",
    )
    parser.add_argument(
        "--levels",
        type=_fractions,
        default="0.5,0.8",
        help="load levels of phase 3, as fractions of the worker's phase-2 rate",
    )
    parser.add_argument(
        "--level-base",
        type=float,
        default=None,
        metavar="EVENTS_PER_S",
        help="events/s the levels are fractions of, instead of the phase-2 rate: the same "
        "load for runs to compare (phase 2 varies by 10%% or more between runs)",
    )
    parser.add_argument(
        "--worker-setting",
        action="append",
        default=[],
        type=_setting,
        metavar="NAME=VALUE",
        help="a PROCESSOR_* setting for the worker, to measure it against the default "
        "(repeatable; the result records it)",
    )
    parser.add_argument(
        "--latency-compression",
        choices=("lz4", "zstd", "gzip", "snappy", "none"),
        default="lz4",
        help="compression of the latency levels' producer; the worker's consumer decompresses "
        "each record batch (bench/PROFILE.md, sessions 10 and 16)",
    )
    parser.add_argument(
        "--latency-linger-ms",
        type=_linger,
        default=5.0,
        metavar="MS",
        help="linger.ms of the latency levels' producer, how long it gathers records before "
        "it sends them: by default 5, the default of librdkafka and of Kafka's Java client; "
        "at 1 (before session 11) its thread and the broker's preempted the worker's event "
        "loop more often (bench/PROFILE.md)",
    )
    parser.add_argument(
        "--pure-python",
        action="store_true",
        help="run the worker on the source as it is; by default it runs on the build with its "
        "pure core compiled (deploy/local/compile.sh), as the container image does",
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic")
    parser.add_argument("--seed", type=int, default=loadgen.DEFAULT_SEED, help="load seed")
    parser.add_argument("--bad-ratio", type=float, default=0.05, help="share of bad events")
    parser.add_argument(
        "--event-bytes", type=int, default=loadgen.EVENT_BYTES, help="target event size"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=HERE / "out",
        help="scratch directory: worker data and log, local servers",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the run's topics, consumer groups, Redis keys and worker data",
    )
    args = parser.parse_args(argv)
    if args.events < 1 or args.contacts < 1 or args.partitions < 1:
        parser.error("--events, --contacts and --partitions must be at least 1")
    if not 0 <= args.bad_ratio < 1:
        parser.error("--bad-ratio must be in [0, 1)")
    if args.warmup_seconds < 0:
        parser.error("--warmup-seconds must not be negative")
    if args.level_base is not None and args.level_base <= 0:
        parser.error("--level-base must be positive")
    return args


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("PROCESSOR_"):
        raise argparse.ArgumentTypeError(
            "NAME=VALUE with a PROCESSOR_* name (`python -m processor.cli settings` lists them)"
        )
    if name in RUN_SETTINGS:
        raise argparse.ArgumentTypeError(f"{name} is set by the run itself")
    return name, value


def _linger(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError("milliseconds from 0 to 1000")
    return value


def _fractions(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if not values or any(not 0 < v <= 2 for v in values):
        raise argparse.ArgumentTypeError("comma-separated fractions in (0, 2], e.g. 0.5,0.8")
    return values


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM as Ctrl-C, so the finally blocks stop the worker and remove what the run made.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    tag = new_tag()
    work_dir = args.work_dir.resolve() / tag
    work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    try:
        # Before the servers start, so that they do not idle through a compile.
        build = None if args.pure_python else compiled_build()
        with servers(work_dir) as srv:
            deployment = Deployment(
                srv,
                work_dir,
                args.partitions,
                tag=tag,
                settings=dict(args.worker_setting),
                build=build,
            )
            result = run(args, deployment)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(work_dir / "worker-data", ignore_errors=True)
    result = {
        "benchmark": "order-processor, issue #4",
        "startedAt": started.isoformat(timespec="seconds"),
        "finishedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    result["summary"] = report.summarize(result)
    missing = report.missing_fields(result)
    if missing:  # a bug here, not in the worker: say so rather than write half a result
        raise RuntimeError(f"result lacks {missing}")
    paths = report.write(result, args.out)
    print(report.table(result))
    print(f"\nwrote {paths['json']} and {paths['png']}; worker log: {deployment.worker_log}")
    return 0


def run(args: argparse.Namespace, deployment: Deployment) -> dict[str, Any]:
    srv = deployment.servers
    log(
        f"run {deployment.tag}: Kafka {srv.bootstrap} ({srv.kafka_source}), "
        f"Redis {srv.redis_url} ({srv.redis_source})"
    )
    result: dict[str, Any] = {
        "parameters": {
            "events": args.events,
            "contacts": args.contacts,
            "latencySeconds": args.latency_seconds,
            "warmupSeconds": args.warmup_seconds,
            "levels": list(args.levels),
            "partitions": args.partitions,
            "seed": args.seed,
            "badRatio": args.bad_ratio,
            "eventBytes": args.event_bytes,
            "levelBase": args.level_base,
            "latencyCompression": args.latency_compression,
            "latencyLingerMs": args.latency_linger_ms,
            "workerSettings": dict(args.worker_setting),
            "build": "pure-python" if deployment.build is None else "compiled",
        },
        "machine": report.machine(_redis_version(srv)),
        "servers": {"kafka": srv.kafka_source, "redis": srv.redis_source},
        "run": {"tag": deployment.tag, "workerLog": str(deployment.worker_log)},
    }
    worker = Worker(deployment)
    try:
        # -- phase 0 --
        log("phase 0: topics")
        deployment.create_topics()
        contacts = phases.import_contacts(deployment, args.contacts)
        produced, load = phases.produce_backlog(deployment, args.events, args.contacts, args.seed)
        result["load"] = load.as_dict()
        offsets = Offsets(srv.bootstrap, deployment.ceiling_group)
        try:
            high = offsets.high(deployment.events_topic)
        finally:
            offsets.close()

        # -- phase 1 --
        log("phase 1: ceiling (aiokafka relay)")
        ceiling = phases.ceiling(deployment, high)

        # -- phase 2 --
        log("phase 2: the worker on the backlog")
        drain_started = time.time()
        worker_run = phases.worker_throughput(deployment, worker, high)
        result["phases"] = {
            "contacts": contacts.as_dict(),
            "produce": produced.as_dict(),
            "ceiling": ceiling.as_dict(),
            "worker": {
                **worker_run.as_dict(),
                **brokergc.summary(_broker_pauses(srv, drain_started, time.time())),
            },
            "latency": [],
        }

        # -- phase 3 --
        rate = args.level_base or worker_run.throughput.per_second
        if args.latency_seconds > 0 and rate > 0:
            for fraction in args.levels:
                log(f"phase 3: {fraction:.0%} of {rate:,.0f} events/s")
                assert worker.memory is not None
                worker.memory.reset_peak()
                level = latency.run_level(
                    deployment,
                    fraction=fraction,
                    rate=fraction * rate,
                    seconds=args.latency_seconds,
                    warmup=args.warmup_seconds,
                    contacts=args.contacts,
                    seed=args.seed,
                    drain_timeout=max(15.0, args.warmup_seconds + args.latency_seconds),
                    worker_cpu_seconds=worker.cpu_seconds,
                    worker_threads=worker.thread_counters,
                    compression=args.latency_compression,
                    linger_ms=args.latency_linger_ms,
                )
                level.broker_gc = _broker_pauses(srv, level.started_at, time.time())
                result["phases"]["latency"].append(
                    {
                        **level.as_dict(),
                        "peakRssMb": round(worker.memory.peak / 2**20, 1),
                    }
                )
        return result
    finally:
        worker.stop()
        if not args.keep:
            log("removing the run's topics, consumer groups and Redis keys")
            deployment.cleanup()


def _broker_pauses(srv: Servers, start: float, end: float) -> list[brokergc.Pause] | None:
    """The broker's GC pauses from ``start`` to ``end`` (wall clock); None when its log is not
    ours to read (a broker not started here)."""
    if srv.broker_gc_log is None:
        return None
    return brokergc.within(brokergc.read(srv.broker_gc_log), start, end)


def _redis_version(srv: Servers) -> str | None:
    client = redis.Redis.from_url(srv.redis_url)
    try:
        return str(client.info("server").get("redis_version"))
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
