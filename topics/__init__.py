"""The topic contract: names, keys, partitions, configs and JSON Schemas of every topic.

The data lives in ``contract.json`` and ``schemas/`` beside this file so that producers in any
language read the same contract the processor does; this module only loads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the contract, with its name already resolved against the environment."""

    role: str
    name: str
    env: str
    key: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    schema_file: str

    def schema(self) -> dict[str, Any]:
        return load_schema(self.schema_file)


@cache
def _raw_contract() -> dict[str, Any]:
    with (CONTRACT_DIR / "contract.json").open("rb") as f:
        contract: dict[str, Any] = json.load(f)
    return contract


@cache
def load_schema(relative_path: str) -> dict[str, Any]:
    with (CONTRACT_DIR / relative_path).open("rb") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def default_partitions() -> int:
    return int(_raw_contract()["partitions"])


def load_contract(
    env: Mapping[str, str] | None = None,
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
) -> dict[str, TopicSpec]:
    """Return the topics by role (``orders_events``, ``contacts``, ...).

    A topic's name comes from its environment variable when set, so that one broker can hold
    several deployments (and the tests can give every test its own topics).
    """
    env = os.environ if env is None else env
    raw = _raw_contract()
    parts = partitions if partitions is not None else int(raw["partitions"])
    replicas = (
        replication_factor if replication_factor is not None else int(raw["replication_factor"])
    )
    return {
        role: TopicSpec(
            role=role,
            name=env.get(spec["env"]) or spec["name"],
            env=spec["env"],
            key=spec["key"],
            partitions=parts,
            replication_factor=replicas,
            config=dict(spec["config"]),
            schema_file=spec["schema"],
        )
        for role, spec in raw["topics"].items()
    }
