"""Schemathesis against the app's own OpenAPI: no generated request gets a 5xx (bounded in time).

Left out: the endpoints that wait for a run by design (execute-workflow waits for the end and answers
504 when no executor is running; execute-stream and the events stream stay open)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from spanline.api.app import create_app
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT, dsn_with_database
from tests.threaded_server import ThreadedServer

WAITING = r"(/execute-workflow$|/execute-stream$|/events$)"


@pytest.fixture(scope="module")
def api_key_and_url(clickhouse_base_dsn: str) -> Iterator[tuple[str, str]]:
    dsn = dsn_with_database(clickhouse_base_dsn, f"fuzz_{uuid.uuid4().hex[:8]}")

    async def prepare() -> str:
        store = Store(dsn, threads=1)
        try:
            await store.run(lambda client: apply_migrations(client, PROJECT_ROOT / "schemas" / "clickhouse"))
            return (await create_api_key(store, "fuzz")).key
        finally:
            store.close()

    key = asyncio.run(prepare())
    server = ThreadedServer(create_app(Settings(clickhouse_dsn=dsn, kafka_bootstrap=None)))
    server.start()
    yield key, server.base_url
    server.stop()


# The schema is rendered by the app itself without starting it (nothing is opened); requests go to a
# real server started by the fixture.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(clickhouse_dsn="chdb://unused", kafka_bootstrap=None)).openapi()
).exclude(path_regex=WAITING)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case, api_key_and_url: tuple[str, str]) -> None:
    key, base_url = api_key_and_url
    response = case.call(base_url=base_url, headers={"X-API-KEY": key}, timeout=30)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} → {response.status_code}: {response.text}"
