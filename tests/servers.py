"""Real Kafka and Redis for the integration tests: from the environment, from testcontainers when
a Docker engine answers, else the project's own local servers (deploy/local/*.sh)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / "deploy" / "local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@cache
def docker_answers() -> bool:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        # No daemon's socket: the SDK's failed connect would leave its own socket open.
        return False
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            client.ping()
        finally:
            client.close()  # its socket to the Docker daemon, left open it warns at exit
    except Exception:
        return False
    return True


def _script(script: str, command: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(LOCAL / script), command],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} {command} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


@contextmanager
def local_kafka(home: Path, jvm_options: str = "") -> Iterator[str]:
    port = free_port()
    env = {
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "KAFKA_HOME_DIR": str(home),
    }
    if jvm_options:
        env["KAFKA_OPTS"] = f"{os.environ.get('KAFKA_OPTS', '')} {jvm_options}".strip()
    _script("kafka.sh", "start", env)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _script("kafka.sh", "stop", env)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def local_redis(home: Path) -> Iterator[str]:
    port = free_port()
    env = {"REDIS_PORT": str(port), "REDIS_HOME_DIR": str(home)}
    _script("redis.sh", "start", env)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _script("redis.sh", "stop", env)
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def container_kafka() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@contextmanager
def container_redis() -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7") as redis:
        yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"


@contextmanager
def server(
    env_var: str,
    container: Callable[[], AbstractContextManager[str]],
    local: Callable[[], AbstractContextManager[str]],
) -> Iterator[str]:
    """The address in ``env_var`` when set, else a container when Docker answers, else local."""
    if os.environ.get(env_var):
        yield os.environ[env_var]
        return
    with container() if docker_answers() else local() as address:
        yield address
