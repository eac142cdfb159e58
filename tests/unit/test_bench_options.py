"""The benchmark's options for comparing runs: a fixed load base and worker settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.infra import RUN_SETTINGS, Deployment, Servers
from bench.run import parse_args


def test_by_default_levels_follow_phase_2_and_the_worker_runs_on_defaults() -> None:
    args = parse_args([])
    assert args.level_base is None
    assert args.worker_setting == []
    assert not args.pure_python  # the compiled build, as the image runs
    assert args.warmup_seconds == 10.0  # each level's first seconds are reported apart
    assert args.latency_compression == "lz4"  # as producers commonly send
    assert args.latency_linger_ms == 5.0  # the Kafka clients' default


def test_the_levels_producer_linger_is_a_bounded_number_of_ms() -> None:
    assert parse_args(["--latency-linger-ms", "0"]).latency_linger_ms == 0.0
    for bad in ("-1", "1001", "soon"):
        with pytest.raises(SystemExit):
            parse_args(["--latency-linger-ms", bad])


def test_the_levels_producer_compression_is_one_kafka_knows() -> None:
    assert parse_args(["--latency-compression", "none"]).latency_compression == "none"
    with pytest.raises(SystemExit):
        parse_args(["--latency-compression", "brotli"])


def test_the_worker_runs_on_the_build_it_is_given(tmp_path: Path) -> None:
    servers = Servers("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "env", "env")
    build = tmp_path / "compiled"
    assert Deployment(servers, tmp_path, 4, build=build).worker_env()["PYTHONPATH"] == str(build)
    source = Deployment(servers, tmp_path, 4).worker_env()
    assert source.get("PYTHONPATH") == os.environ.get("PYTHONPATH")


def test_a_worker_setting_reaches_the_worker_and_the_run_keeps_its_own_names(
    tmp_path: Path,
) -> None:
    args = parse_args(
        [
            "--level-base",
            "1100",
            "--worker-setting",
            "PROCESSOR_BATCH_WAIT_MS=20",
            "--worker-setting",
            "PROCESSOR_BATCH_SIZE=100",
        ]
    )
    assert args.level_base == 1100
    servers = Servers("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "env", "env")
    deployment = Deployment(servers, tmp_path, 4, settings=dict(args.worker_setting))
    env = deployment.worker_env()
    assert env["PROCESSOR_BATCH_WAIT_MS"] == "20"
    assert env["PROCESSOR_BATCH_SIZE"] == "100"
    assert env["PROCESSOR_APP_ID"] == deployment.app_id


def test_the_settings_a_run_sets_itself_are_the_ones_refused(tmp_path: Path) -> None:
    servers = Servers("127.0.0.1:9092", "redis://127.0.0.1:6379/0", "env", "env")
    env = Deployment(servers, tmp_path, 4).worker_env()
    assert {name for name in env if name.startswith("PROCESSOR_")} == set(RUN_SETTINGS)


@pytest.mark.parametrize(
    "argv",
    [
        ["--worker-setting", "PROCESSOR_APP_ID=mine"],  # the run's own name
        ["--worker-setting", "REDIS_URL=redis://elsewhere"],  # not a worker setting
        ["--worker-setting", "PROCESSOR_BATCH_SIZE"],  # no value
        ["--level-base", "0"],
        ["--warmup-seconds", "-1"],
    ],
)
def test_options_that_would_misdirect_the_run_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
