"""SPEC §4: the cost of a detail page must not grow with how deep into the execution it is. Measured in
what ClickHouse reads, not in time: the rows and bytes its MergeTree reads select for the whole request
(the process-wide `SelectedRows` / `SelectedBytes` counters of `system.events`, before and after; chDB has
no `system.query_log`, and its per-query summary counts the result's rows, not the rows read)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
from asgi_lifespan import LifespanManager

from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.big_execution import SPANS, StoredExecution

LIMIT: Final = 100
TOLERANCE: Final = 0.20
_COUNTERS: Final = "SELECT event, value FROM system.events WHERE event IN ('SelectedRows', 'SelectedBytes')"


async def counters(store: Store) -> dict[str, int]:
    rows = dict(await store.query(_COUNTERS))
    return {name: int(rows.get(name, 0)) for name in ("SelectedRows", "SelectedBytes")}


@pytest.fixture
async def store(big_execution_100k: StoredExecution) -> AsyncIterator[Store]:
    """A store over the session's 100,000-span execution (tests/conftest.py)."""
    store = Store(big_execution_100k.dsn, threads=2)
    yield store
    store.close()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(clickhouse_dsn=store.dsn, kafka_bootstrap=None), store=store, bus=MemoryBus())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test", timeout=120) as http:
            yield http


async def test_first_middle_and_last_page_read_the_same(
    client: httpx.AsyncClient, store: Store, big_execution_100k: StoredExecution
) -> None:
    key = (await create_api_key(store, big_execution_100k.org)).key
    execution_id, order = big_execution_100k.execution_id, big_execution_100k.order
    for table in ("span_order", "span_state", "events_by_span"):  # one part each: the same layout for every run
        await store.command(f"OPTIMIZE TABLE {table} FINAL")
    pages = SPANS // LIMIT
    cursors: dict[str, str | None] = {
        "first": None,
        "middle": order[(pages // 2) * LIMIT - 1][1],
        "last": order[(pages - 1) * LIMIT - 1][1],
    }

    async def page(cursor: str | None) -> list[Any]:
        params: dict[str, Any] = {"span_limit": LIMIT} | ({"prev_span_id": cursor} if cursor else {})
        response = await client.get(
            f"/v1/workflow-executions/{execution_id}/detail", params=params, headers={"X-API-KEY": key}
        )
        assert response.status_code == 200, response.text
        return list(response.json()["spans"])

    read: dict[str, dict[str, int]] = {}
    for name, cursor in cursors.items():
        assert len(await page(cursor)) == LIMIT  # and warms what a first request reads once (the key)
        idle_before = await counters(store)
        idle_after = await counters(store)  # what reading the counters itself selects
        before = await counters(store)
        await page(cursor)
        after = await counters(store)
        read[name] = {
            counter: after[counter] - before[counter] - (idle_after[counter] - idle_before[counter])
            for counter in after
        }
    print(f"detail page reads ({SPANS:,} spans, span_limit={LIMIT}): {read}")
    for counter in ("SelectedRows", "SelectedBytes"):
        values = [read[name][counter] for name in cursors]
        assert min(values) > 0, read
        assert max(values) <= (1 + TOLERANCE) * min(values), f"{counter} differs by depth: {read}"
