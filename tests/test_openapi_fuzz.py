"""Schemathesis against the app's own OpenAPI: no generated request gets a 5xx, at least 200 examples per
operation, against a store that holds data (generated executions, the example workflows) and with an
executor running, so execute-workflow ends its runs. The streams (execute-stream, `/events`) are read
only until their status line (bounded waits): a stream of an execution that has not started stays open
by design. SPANLINE_FUZZ_EXAMPLES (200) sets the examples per operation (fewer for a quick local run)."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.consumer.replay import replay_from_events
from spanline.core.config import Settings
from spanline.executor.examples import load_examples
from spanline.executor.worker import ExecutorWorker
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.api_data import generate_executions, ingest
from tests.conftest import PROJECT_ROOT, fresh_database
from tests.threaded_server import ThreadedServer

STREAMS = re.compile(r"(/execute-stream|/events)$")
EXAMPLES = int(os.environ.get("SPANLINE_FUZZ_EXAMPLES", "200"))


class WithExecutor:
    """The API app with an executor worker on the same in-process bus, for the app's lifetime."""

    def __init__(self, app: Any, bus: MemoryBus, settings: Settings) -> None:
        self.app, self.bus, self.settings = app, bus, settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        stop = asyncio.Event()
        worker = asyncio.create_task(ExecutorWorker(self.bus, self.settings).run(stop))
        try:
            await self.app(scope, receive, send)
        finally:
            stop.set()
            await worker


@pytest.fixture(scope="module")
def fuzz_dsn(clickhouse_base_dsn: str) -> Iterator[str]:
    with fresh_database(clickhouse_base_dsn, "fuzz") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def api_key_and_url(fuzz_dsn: str) -> Iterator[tuple[str, str]]:
    dsn = fuzz_dsn

    async def prepare() -> str:
        store = Store(dsn, threads=1)
        try:
            await store.run(lambda client: apply_migrations(client, PROJECT_ROOT / "schemas" / "clickhouse"))
            await load_examples(store, "fuzz")
            runs = generate_executions(random.Random(5), 40, orgs=["fuzz", "other"], start=datetime.now(UTC), days=2)
            await ingest(store, runs)
            await replay_from_events(store)  # the derived tables too: runs, rollups
            return (await create_api_key(store, "fuzz")).key
        finally:
            store.close()

    key = asyncio.run(prepare())
    app_settings = Settings(clickhouse_dsn=dsn, kafka_bootstrap=None, local_provider_latency_ms=0, execute_timeout_s=20)
    bus = MemoryBus()
    server = ThreadedServer(WithExecutor(create_app(app_settings, bus=bus), bus, app_settings))
    server.start()
    yield key, server.base_url
    server.stop()


# The schema is rendered by the app itself without starting it (nothing is opened); requests go to a
# real server started by the fixture.
schema = schemathesis.openapi.from_dict(
    create_app(Settings(clickhouse_dsn="chdb://unused", kafka_bootstrap=None)).openapi()
)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case, api_key_and_url: tuple[str, str]) -> None:
    key, base_url = api_key_and_url
    if STREAMS.search(case.operation.path):
        kwargs = case.as_transport_kwargs(base_url=base_url, headers={"X-API-KEY": key})
        with requests.request(**kwargs, stream=True, timeout=(5, 30)) as streamed:  # status line, then hang up
            status, text = streamed.status_code, "" if streamed.status_code < 500 else streamed.text
    else:
        response = case.call(base_url=base_url, headers={"X-API-KEY": key}, timeout=30)
        status, text = response.status_code, response.text
    assert status < 500, f"{case.method} {case.formatted_path} → {status}: {text}"
