"""The ``processor`` command: the worker and the tools around it.

Exit codes: 0 done, 1 bad input (nothing written), 2 a server is unreachable or a setting is wrong.
"""

from __future__ import annotations

import csv
import gc
import sys
from collections.abc import Iterator
from importlib.machinery import ExtensionFileLoader
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson

from processor import __version__
from processor.contacts import Contact, parse_contact
from processor.errors import ConfigError, Rejected, Unavailable
from processor.settings import Settings, describe

EXIT_BAD_INPUT = 1
EXIT_UNAVAILABLE = 2
GC_GEN0_THRESHOLD = 50_000


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Settings come from the environment; `processor settings` lists them.",
)
@click.version_option(__version__, prog_name="processor")
def main() -> None:
    """Order-event stream processor: Generate-event orders from Kafka to order state, dead
    letters and an RFM feed."""


@main.command()
@click.option(
    "--loglevel", default="info", show_default=True, help="debug, info, warning or error."
)
def worker(loglevel: str) -> None:
    """Run the Faust worker: consume orders.events and contacts, keep the orders table, publish
    orders.rfm and orders.dlq, serve the web dashboard.

    Creates missing topics from the contract first (PROCESSOR_CREATE_TOPICS=false to skip).
    Stop it with Ctrl-C or SIGTERM.
    """
    import faust
    import mode.loop

    from processor.admin import ensure_topics
    from processor.app import create_app

    settings = _settings()
    if settings.create_topics:
        try:
            ensure_topics(settings)
        except (Unavailable, ConfigError) as exc:
            _fail(str(exc), EXIT_UNAVAILABLE)
    mode.loop.use("uvloop")
    processor = create_app(settings)
    _tune_gc()
    url = f"http://{settings.web_host}:{settings.web_port}/dashboard"
    click.echo(
        f"order processor {settings.app_id}: dashboard at {url}; core {core_build()}", err=True
    )
    faust.Worker(processor.app, loglevel=loglevel).execute_from_commandline()


def core_build() -> str:
    """ "compiled" when the pure core runs as C extensions (setup.py, as in the container image),
    else "interpreted": the first thing to know about a worker's CPU figures."""
    from processor import events

    return "compiled" if isinstance(events.__loader__, ExtensionFileLoader) else "interpreted"


def _tune_gc() -> None:
    # Each event leaves a few hundred short-lived objects; at CPython's default gen-0 threshold
    # (700) a collection ran every few events, each also walking the young objects that live on
    # (Faust's). What is loaded by now lives as long as the process: out of the collector's way.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 50)


@main.group()
def topics() -> None:
    """The topic contract on the broker."""


@topics.command("create")
def topics_create() -> None:
    """Create the contract's topics, or bring their configs in line. Safe to run again."""
    from processor.admin import ensure_topics

    try:
        results = ensure_topics(_settings())
    except (Unavailable, ConfigError) as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    for result in results:
        click.echo(f"{result.action:9} {result.name}")


@main.command("settings")
def show_settings() -> None:
    """List every setting: environment variable, current value, meaning; then check them all
    (exit 2 when one is wrong, as the worker would)."""
    import os

    for env, default, text in describe():
        value = os.environ.get(env, default)
        click.echo(f"{env}={value}\n    {text}")
    _settings()


@main.group()
def contacts() -> None:
    """The contact directory in Redis."""


@contacts.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "jsonl"]),
    default="auto",
    show_default=True,
    help="auto: .csv is CSV with a header, anything else JSON lines.",
)
@click.option("--batch", default=1000, show_default=True, help="Contacts per Redis round trip.")
def contacts_import(file: Path, fmt: str, batch: int) -> None:
    """Import contacts from FILE into Redis, before returning.

    CSV with a header, or JSON lines. Columns: id (required), externalCustomerId, email, phone,
    contactKey, pushToken, and any custom identifier columns. The whole file is checked first:
    if any line is bad, nothing is written.
    """
    import asyncio

    from processor.directory import UNREACHABLE, ContactDirectory

    if fmt == "auto":
        fmt = "csv" if file.suffix.lower() == ".csv" else "jsonl"
    parsed, errors = read_contacts(file, fmt)
    if errors:
        for line in errors[:20]:
            click.echo(f"error: {line}", err=True)
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        _fail(f"{len(errors)} bad line(s) in {file}{more}; nothing imported", EXIT_BAD_INPUT)

    settings = _settings()

    async def run() -> int:
        directory = ContactDirectory.from_url(settings.redis_url, settings.redis_prefix)
        try:
            done = 0
            for start in range(0, len(parsed), batch):
                done += await directory.upsert_many(parsed[start : start + batch])
                if len(parsed) > batch:
                    click.echo(f"  {done}/{len(parsed)} contacts", err=True)
            return done
        finally:
            await directory.close()

    try:
        count = asyncio.run(run())
    except UNREACHABLE as exc:
        _fail(f"Redis at {settings.redis_url} is unreachable: {exc}", EXIT_UNAVAILABLE)
    click.echo(f"imported {count} contacts from {file}")


def read_contacts(file: Path, fmt: str) -> tuple[list[Contact], list[str]]:
    parsed: list[Contact] = []
    errors: list[str] = []
    for line_no, record in _records(file, fmt, errors):
        try:
            parsed.append(parse_contact(record))
        except Rejected as exc:
            errors.append(f"{file}:{line_no}: {exc.detail}")
    if not parsed and not errors:
        errors.append(f"{file}: no contacts in the file")
    return parsed, errors


def _records(file: Path, fmt: str, errors: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    with file.open(encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "id" not in [f.strip().lower() for f in reader.fieldnames]:
                errors.append(f"{file}:1: the CSV header has no 'id' column")
                return
            for row in reader:
                if None in row:
                    errors.append(f"{file}:{reader.line_num}: more fields than the header")
                    continue
                yield reader.line_num, {k.strip(): v for k, v in row.items()}
            return
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                errors.append(f"{file}:{line_no}: not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                errors.append(f"{file}:{line_no}: a contact must be a JSON object")
                continue
            yield line_no, record


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--raw",
    is_flag=True,
    help="Send every line as it is (to exercise dead letters); lines without an "
    "externalOrderId go unkeyed.",
)
def produce(file: Path, raw: bool) -> None:
    """Produce Generate events from FILE (JSON lines) to orders.events, keyed by externalOrderId.

    Lines are checked first: each must be a JSON object whose params carry an externalOrderId,
    else nothing is sent (unless --raw). Keys are partitioned with murmur2, as the processor
    expects.
    """
    from processor.producer import EventProducer, order_key

    records: list[tuple[bytes | None, bytes]] = []
    errors: list[str] = []
    with file.open("rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            key = order_key(line)
            if key is None and not raw:
                errors.append(f"{file}:{line_no}: not a Generate event with an externalOrderId")
            records.append((key, line))
    if errors:
        for message in errors[:20]:
            click.echo(f"error: {message}", err=True)
        _fail(f"{len(errors)} bad line(s) in {file}; nothing sent (--raw sends anyway)", 1)
    if not records:
        _fail(f"{file}: no events in the file", EXIT_BAD_INPUT)

    settings = _settings()
    topic = settings.topics()["orders_events"].name
    try:
        producer = EventProducer(settings.kafka_bootstrap_servers)
        sent = producer.send_all(topic, records, progress=lambda n: click.echo(f"  {n}", err=True))
    except Unavailable as exc:
        _fail(str(exc), EXIT_UNAVAILABLE)
    click.echo(f"produced {sent} events to {topic}")


if __name__ == "__main__":  # pragma: no cover
    main()
