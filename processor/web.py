"""The worker's web views.

GET /orders/{externalOrderId}   the order as JSON, 404 when unknown; routed to the worker
                                that owns the order's partition
GET /api/stats                  this worker's counters as JSON
GET /dashboard                  the same counters for people, refreshed every few seconds

With PROCESSOR_WEB_TOKEN set, every path needs the token (Faust's own pages too) but ``/``,
Faust's index, which answers {"status": "OK"} for health checks.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web as aiohttp_web

from processor.app import Processor

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>order processor: {app_id}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5rem; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .3rem .8rem; text-align: left; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style></head><body>
<h1>order processor <small>{app_id}</small></h1>
<p>Counters of this worker since it started. Look up an order: <code>/orders/&lt;id&gt;</code>.
JSON: <a href="/api/stats">/api/stats</a>.</p>
{tables}
</body></html>
"""


def _table(title: str, rows: dict[str, Any]) -> str:
    body = (
        "".join(
            f"<tr><td>{html.escape(str(k))}</td><td class=n>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        or "<tr><td colspan=2>none yet</td></tr>"
    )
    return f"<h2>{html.escape(title)}</h2><table>{body}</table>"


def render_dashboard(app_id: str, stats: dict[str, Any]) -> str:
    scalars = {k: v for k, v in stats.items() if not isinstance(v, dict)}
    sections = [_table("Worker", scalars)]
    sections += [
        _table(title, stats[key])
        for key, title in (
            ("events", "Events by type"),
            ("deadLetters", "Dead letters by reason"),
            ("rfmRecords", "RFM records by op"),
        )
    ]
    return _PAGE.format(app_id=html.escape(app_id), tables="".join(sections))


#: Open without the token: Faust's index answers {"status": "OK"} and nothing else, which is
#: what a container's health check asks for.
OPEN_PATHS = frozenset({"/"})


def token_required(token: str) -> Any:
    """An aiohttp middleware that asks every request for the bearer token: our views and Faust's
    own pages alike (``/router/``, which lists the cluster's partition assignment). Faust
    forwards the request's headers when it routes a lookup to another worker, so a token works
    across workers too; a browser can pass it as ``?token=``."""

    @aiohttp_web.middleware
    async def require_token(request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ")
            given = given or request.query.get("token", "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return aiohttp_web.json_response({"error": "unauthorized"}, status=401)
        return await handler(request)

    return require_token


def register(processor: Processor) -> None:
    app = processor.app
    token = processor.settings.web_token
    if token:
        # aiohttp takes middlewares until the application starts, with the worker.
        app.web.web_app.middlewares.append(token_required(token))

    @app.page("/orders/{external_order_id}")
    @app.table_route(table=processor.orders, match_info="external_order_id")
    async def get_order(web: Any, request: Any, external_order_id: str) -> Any:
        stored = processor.orders.get(external_order_id.encode())
        if stored is None:
            return web.json(
                {"error": "not_found", "externalOrderId": external_order_id}, status=404
            )
        return web.json(stored)

    @app.page("/api/stats")
    async def stats(web: Any, request: Any) -> Any:
        return web.json(processor.metrics.snapshot())

    @app.page("/dashboard")
    async def dashboard(web: Any, request: Any) -> Any:
        page = render_dashboard(processor.settings.app_id, processor.metrics.snapshot())
        return web.html(page)
