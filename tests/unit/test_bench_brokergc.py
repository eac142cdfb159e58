"""The broker's GC pauses, read from its JVM's log and put beside a level's latency."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bench import brokergc
from bench.brokergc import Pause
from bench.latency import LevelResult, Sample

# Lines as Java 17's -Xlog:gc with the `time` decorator writes them.
LOG = [
    "[2026-12-01T14:58:04.120+0000] Using G1",
    "[2026-12-01T14:59:25.988+0000] GC(28) Pause Young (Normal) (G1 Evacuation Pause) "
    "432M->168M(512M) 62.229ms",
    "[2026-12-01T14:59:25.988+0000] GC(28) User=0.02s Sys=0.00s Real=0.06s",
    "[2026-12-01T14:59:26.700+0000] GC(29)   Evacuate Collection Set: 10.5ms",
    "[2026-12-01T14:59:26.721+0000] GC(29) Pause Young (Concurrent Start) "
    "(Metadata GC Threshold) 223M->174M(512M) 11.294ms",
    "[2026-12-01T14:59:26.731+0000] GC(30) Concurrent Mark Cycle",
    "[2026-12-01T14:59:26.775+0000] GC(30) Pause Remark 176M->176M(512M) 8.089ms",
    "[2026-12-01T14:59:26.790+0000] GC(30) Pause Cleanup 177M->177M(512M) 0.196ms",
    "[2026-12-01T14:59:26.800+0000] GC(30) Concurrent Mark Cycle 69.123ms",
    "[2026-12-01T14:59:27.001+0000] GC(31) Pause Mark Start 0.012ms",
]


def at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def test_pauses_are_read_with_their_end_kind_and_length_and_nothing_else() -> None:
    pauses = brokergc.parse(LOG)
    assert [(p.kind, p.ms) for p in pauses] == [
        ("Young (Normal) (G1 Evacuation Pause)", 62.229),
        ("Young (Concurrent Start) (Metadata GC Threshold)", 11.294),
        ("Remark", 8.089),
        ("Cleanup", 0.196),
        ("Mark Start", 0.012),  # ZGC's, which logs no heap figures
    ]
    # The concurrent cycle's 69 ms is not a pause: the broker answers during it.
    assert pauses[0].ended == at("2026-12-01T14:59:25.988+0000")


def test_a_missing_log_has_no_pauses_and_a_written_one_is_read(tmp_path: Path) -> None:
    assert brokergc.read(tmp_path / "gc.log") == []
    (tmp_path / "gc.log").write_text("\n".join(LOG) + "\n")
    assert len(brokergc.read(tmp_path / "gc.log")) == 5


def test_the_jvm_option_names_the_file_and_refuses_names_it_cannot_parse(tmp_path: Path) -> None:
    option = brokergc.log_option(tmp_path / "gc.log")
    assert option == f"-Xlog:gc,gc+phases,gc+cpu:file={tmp_path}/gc.log:time"
    with pytest.raises(ValueError, match="cannot take"):
        brokergc.log_option(Path("/tmp/a:b/gc.log"))


def test_pauses_are_summed_by_window_and_by_second() -> None:
    pauses = [Pause(100.5, 20.0, "Young"), Pause(101.2, 5.0, "Young"), Pause(101.9, 7.5, "Remark")]
    assert brokergc.within(pauses, 101.0, 102.0) == pauses[1:]
    assert brokergc.summary(pauses[1:]) == {
        "brokerGcPauses": 2,
        "brokerGcPauseMs": 12.5,
        "brokerGcMaxPauseMs": 7.5,
    }
    assert brokergc.summary([])["brokerGcMaxPauseMs"] == 0.0
    assert brokergc.summary(None) == dict.fromkeys(brokergc.summary([]), None)
    assert brokergc.per_second(pauses, t0=100.0) == {0: 20.0, 1: 12.5}


def level(broker_gc: list[Pause] | None) -> LevelResult:
    samples = [Sample(at=i / 10, total_ms=float(i), worker_ms=0.0) for i in range(30)]
    return LevelResult(
        fraction=0.5,
        target_rate=10.0,
        seconds=3.0,
        sent=30,
        achieved_rate=10.0,
        expected=20,
        all_samples=samples,
        max_send_lag_ms=0.0,
        warmup_seconds=1.0,
        started_at=1000.0,
        broker_gc=broker_gc,
    )


def test_a_level_counts_the_pauses_after_its_warmup_and_shows_each_in_its_second() -> None:
    figures = level([Pause(1000.4, 90.0, "Young"), Pause(1002.5, 30.0, "Young")]).as_dict()
    # The warm-up's pause is in its timeline second, not in the level's figures.
    assert (figures["brokerGcPauses"], figures["brokerGcMaxPauseMs"]) == (1, 30.0)
    assert [t["brokerGcPauseMs"] for t in figures["timeline"]] == [90.0, 0.0, 30.0]
    # Second 0 of that timeline, on the wall clock the GC log's times are on.
    assert figures["startedAt"] == "1970-01-01T00:16:40.000+00:00"


def test_a_level_on_a_broker_not_started_here_says_its_pauses_are_unknown() -> None:
    figures = level(None).as_dict()
    assert figures["brokerGcPauses"] is None and figures["brokerGcMaxPauseMs"] is None
    assert all("brokerGcPauseMs" not in t for t in figures["timeline"])
