"""An API + consumer runtime for the HTTP intake tests: a real uvicorn server on 127.0.0.1, the consumer
on the same bus (in-process, or a real Kafka broker with topics of the test's own), an API key; helpers
read what reached the events topic and wait until the consumer has committed a number of messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from spanline.api.app import create_app
from spanline.bus.interface import Bus, BusMessage
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.live_server import serve


@dataclass
class IntakeRuntime:
    client: httpx.AsyncClient
    base_url: str
    key: str
    bus: Bus
    settings: Settings
    store: Store

    async def topic_messages(self, wanted: int, timeout_s: float = 60) -> list[BusMessage]:
        """The events topic from the beginning until at least `wanted` messages were read."""
        reader = self.bus.consumer([self.settings.events_topic], group_id=None, from_beginning=True)
        await reader.start()
        found: list[BusMessage] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        try:
            while len(found) < wanted:
                assert asyncio.get_running_loop().time() < deadline, f"{len(found)} of {wanted} messages"
                found += await reader.getmany(max_records=10_000, timeout_ms=200)
        finally:
            await reader.stop()
        return found

    async def consumed(self, messages: int, timeout_s: float = 60) -> None:
        """Wait until the consumer group committed `messages` messages of the events topic in all."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            committed = await self.bus.committed_offsets(self.settings.consumer_group, self.settings.events_topic)
            if sum(committed.values()) >= messages:
                return
            assert asyncio.get_running_loop().time() < deadline, f"committed {committed}, want {messages}"
            await asyncio.sleep(0.05)  # poll the committed offsets

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


def intake_settings(base: Settings, kafka_bootstrap: str | None, **overrides: Any) -> Settings:
    """Topics and group of this test alone (a shared broker keeps other tests' messages)."""
    suffix = uuid.uuid4().hex[:8]
    return base.model_copy(
        update={
            "kafka_bootstrap": kafka_bootstrap,
            "events_topic": f"intake-events-{suffix}",
            "dlq_topic": f"intake-dlq-{suffix}",
            "executions_topic": f"intake-exec-{suffix}",
            "consumer_group": f"intake-group-{suffix}",
            "topic_partitions": 3,
            "consumer_derive_interval_ms": 50,
            "consumer_poll_ms": 50,
            **overrides,
        }
    )


@asynccontextmanager
async def intake_runtime(settings: Settings, store: Store, org: str = "acme") -> AsyncIterator[IntakeRuntime]:
    bus: Bus = (
        KafkaBus(settings.kafka_bootstrap, linger_ms=1)
        if settings.kafka_bootstrap
        else MemoryBus(default_partitions=settings.topic_partitions)
    )
    await bus.create_topics([settings.events_topic, settings.dlq_topic], settings.topic_partitions)
    stopping = asyncio.Event()
    consumer = asyncio.create_task(run_consumer(settings, store=store, bus=bus, stop=stopping))
    key = (await create_api_key(store, org)).key
    try:
        async with (
            serve(create_app(settings, store=store, bus=bus)) as base_url,
            httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=60) as client,
        ):
            yield IntakeRuntime(client, base_url, key, bus, settings, store)
    finally:
        stopping.set()
        await consumer
        await bus.close()
