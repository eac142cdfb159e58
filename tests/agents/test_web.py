"""The web token: every path asks for it (our views and Faust's own pages), except the index a
health check reads. Served by a real aiohttp server on loopback; no Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web as aiohttp_web
from aiohttp.test_utils import TestClient, TestServer

from processor.web import token_required
from tests.agents.support import offline_processor

TOKEN = "s3cret"


async def ok(request: aiohttp_web.Request) -> aiohttp_web.Response:
    return aiohttp_web.json_response({"status": "OK"})


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    app = aiohttp_web.Application(middlewares=[token_required(TOKEN)])
    for path in ("/", "/router/", "/orders/{id}"):
        app.router.add_get(path, ok)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize("path", ["/router/", "/orders/o-1"])
async def test_a_request_without_the_token_is_refused(client: TestClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await client.get(path, headers=headers)
        assert response.status == 401
        assert await response.json() == {"error": "unauthorized"}


async def test_the_token_opens_every_path_by_header_or_query(client: TestClient) -> None:
    response = await client.get("/router/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200
    response = await client.get("/orders/o-1", params={"token": TOKEN})
    assert response.status == 200


async def test_the_index_stays_open_for_health_checks(client: TestClient) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert await response.json() == {"status": "OK"}


async def test_the_worker_checks_the_token_only_when_one_is_set(tmp_path: Path) -> None:
    with offline_processor(tmp_path / "a", web_token=TOKEN) as processor:
        names = [m.__name__ for m in processor.app.web.web_app.middlewares]
        assert names == ["require_token"]
    with offline_processor(tmp_path / "b") as processor:
        assert list(processor.app.web.web_app.middlewares) == []
