from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real broker per test run, shared by tests that use their own topics and groups."""
    with servers.server(
        "KAFKA_BOOTSTRAP_SERVERS",
        servers.container_kafka,
        lambda: servers.local_kafka(tmp_path_factory.mktemp("kafka")),
    ) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with servers.server(
        "REDIS_URL",
        servers.container_redis,
        lambda: servers.local_redis(tmp_path_factory.mktemp("redis")),
    ) as url:
        yield url
