"""Counters of one worker, for the dashboard. Observability only, never state: they restart at
zero with the worker, unlike the orders table."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Metrics:
    started_at: float = field(default_factory=time.time)
    events: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    rfm_records: Counter[str] = field(default_factory=Counter)
    applied: int = 0
    unchanged: int = 0
    replays: int = 0
    rekeyed: int = 0
    flagged_total_mismatch: int = 0
    contacts_upserted: int = 0
    contacts_deleted: int = 0
    redis_waits: int = 0
    batches: int = 0
    slowest_batch_ms: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptimeSeconds": round(time.time() - self.started_at, 1),
            "events": dict(self.events),
            "applied": self.applied,
            "unchanged": self.unchanged,
            "replays": self.replays,
            "rekeyed": self.rekeyed,
            "deadLetters": dict(self.dead_letters),
            "rfmRecords": dict(self.rfm_records),
            "flaggedTotalMismatch": self.flagged_total_mismatch,
            "contactsUpserted": self.contacts_upserted,
            "contactsDeleted": self.contacts_deleted,
            "redisWaits": self.redis_waits,
            "batches": self.batches,
            "slowestBatchMs": round(self.slowest_batch_ms, 1),
        }

    def batch_done(self, seconds: float) -> None:
        self.batches += 1
        self.slowest_batch_ms = max(self.slowest_batch_ms, seconds * 1000)
