"""An executor + API runtime for tests: in-process bus, chDB store, a real uvicorn server, an API key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from uuid import UUID

import httpx

from spanline.api.app import create_app
from spanline.bus.interface import Bus
from spanline.bus.memory import MemoryBus
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.events.codec import decode_event
from spanline.events.models import Event
from spanline.executor.examples import load_examples
from spanline.executor.providers.base import ModelProvider
from spanline.executor.worker import ExecutorWorker
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.live_server import serve


@dataclass
class Runtime:
    client: httpx.AsyncClient
    base_url: str
    key: str
    bus: Bus
    settings: Settings
    store: Store

    async def events_of(self, execution_id: UUID) -> list[tuple[bytes, Event]]:
        """Every event of one execution on the events topic so far, in order (raw bytes and decoded)."""
        reader = self.bus.consumer([self.settings.events_topic], group_id=None, from_beginning=True)
        await reader.start()
        found: list[tuple[bytes, Event]] = []
        try:
            while batch := await reader.getmany(max_records=10_000, timeout_ms=100):
                found += [(m.value, decode_event(m.value)) for m in batch if m.key == str(execution_id).encode()]
        finally:
            await reader.stop()
        return found


@asynccontextmanager
async def executor_runtime(
    settings: Settings,
    store: Store,
    providers: Mapping[str, ModelProvider],
    org: str = "acme",
    *,
    with_consumer: bool = False,
) -> AsyncIterator[Runtime]:
    bus = MemoryBus(default_partitions=settings.topic_partitions)
    if not with_consumer:  # nothing will store the runs: execute-workflow must not wait for it
        settings = settings.model_copy(update={"execute_stored_wait_s": 0})
    stopping = asyncio.Event()
    worker = asyncio.create_task(ExecutorWorker(bus, settings, providers=providers).run(stopping))
    consumer = (
        asyncio.create_task(run_consumer(settings, store=store, bus=bus, stop=stopping)) if with_consumer else None
    )
    key = (await create_api_key(store, org)).key
    await load_examples(store, org)
    try:
        async with (
            serve(create_app(settings, store=store, bus=bus)) as base_url,
            httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=60) as client,
        ):
            yield Runtime(client, base_url, key, bus, settings, store)
    finally:
        stopping.set()
        await worker
        if consumer is not None:
            await consumer
