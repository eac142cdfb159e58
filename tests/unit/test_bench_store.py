"""``python -m bench.store`` on a small load: it completes and reports every variant in full."""

from __future__ import annotations

import json

import pytest

from bench import store


def test_a_small_run_reports_each_variant_with_every_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store.main(["--events", "3000", "--contacts", "500", "--fresh", "1000", "--rounds", "1"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line[:1] == "{"]
    assert [line["variant"] for line in lines] == list(store.VARIANTS)
    for line in lines:
        assert line["writes"] > 2000
        assert set(line) == {
            "variant",
            "round",
            "writes",
            "cpuSeconds",
            "cpuUsPerWrite",
            "writeSeconds",
            "freshWrites",
            "freshCpuUsPerWrite",
            "diskMb",
        }
        assert line["freshWrites"] == 1000
        assert line["cpuSeconds"] > 0 and line["freshCpuUsPerWrite"] > 0 and line["diskMb"] > 0
