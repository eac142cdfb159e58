from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from tests import servers


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real broker per test run, shared by tests that use their own topics and groups."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    manager: AbstractContextManager[str] = (
        servers.container_kafka()
        if servers.docker_answers()
        else servers.local_kafka(tmp_path_factory.mktemp("kafka"))
    )
    with manager as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    manager: AbstractContextManager[str] = (
        servers.container_redis()
        if servers.docker_answers()
        else servers.local_redis(tmp_path_factory.mktemp("redis"))
    )
    with manager as url:
        yield url
