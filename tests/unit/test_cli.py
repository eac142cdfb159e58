"""The ``processor`` command's answers to bad input and unreachable servers (no servers needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main

UNREACHABLE_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env or UNREACHABLE_ENV)
    return result.exit_code, result.output


def test_help_lists_every_command() -> None:
    code, output = run("--help")
    assert code == 0
    for command in ("worker", "contacts", "produce", "topics", "settings"):
        assert command in output


def test_settings_lists_env_variables() -> None:
    code, output = run("settings")
    assert code == 0
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1" in output
    assert "PROCESSOR_TOTAL_MISMATCH=flag" in output


def test_settings_lists_then_refuses_a_value_the_worker_would_refuse() -> None:
    code, output = run("settings", env={**UNREACHABLE_ENV, "PROCESSOR_FETCH_MIN_BYTES": "0"})
    assert code == 2
    assert "PROCESSOR_FETCH_MIN_BYTES=0" in output
    assert "error: PROCESSOR_FETCH_MIN_BYTES must be from 1 to 1048576" in output


def test_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    code, output = run("topics", "create", env={**UNREACHABLE_ENV, "PROCESSOR_PARTITIONS": "x"})
    assert code == 2
    assert "PROCESSOR_PARTITIONS='x'" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("email\na@example.com\n", "no 'id' column"),
        ("id,email\n,a@example.com\n", "the contact has no id"),
        ('{"id": "c-1"}\nnot json\n', "not JSON"),
        ("", "no contacts"),
    ],
)
def test_contacts_import_refuses_bad_files_before_writing(
    tmp_path: Path, content: str, message: str
) -> None:
    suffix = ".csv" if content.startswith(("email", "id,")) else ".jsonl"
    path = tmp_path / f"contacts{suffix}"
    path.write_text(content)
    code, output = run("contacts", "import", str(path))
    assert code == 1
    assert message in output
    assert "nothing imported" in output or "no contacts" in output


def test_contacts_import_reports_unreachable_redis(tmp_path: Path) -> None:
    path = tmp_path / "contacts.jsonl"
    path.write_text(json.dumps({"id": "c-1", "email": "a@example.com"}) + "\n")
    code, output = run("contacts", "import", str(path))
    assert code == 2
    assert "Redis at redis://127.0.0.1:1/0 is unreachable" in output


def test_produce_refuses_lines_without_an_order_id(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"eventTypeKey": "orderCreated", "params": []}\nnot json\n')
    code, output = run("produce", str(path))
    assert code == 1
    assert "events.jsonl:1" in output
    assert "events.jsonl:2" in output
    assert "nothing sent" in output


def test_produce_reports_unreachable_kafka(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    event = {
        "eventTypeKey": "orderDelivered",
        "params": [{"name": "externalOrderId", "value": "1"}],
    }
    path.write_text(json.dumps(event) + "\n")
    code, output = run("produce", str(path))
    assert code == 2
    assert "does not answer" in output
