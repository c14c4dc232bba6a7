"""The API skeleton: health, readiness against real Kafka and ClickHouse, API-key authentication."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager

from spanline.api.app import create_app
from spanline.bus.interface import Bus
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.kafka.broker import KafkaBroker


@asynccontextmanager
async def api_client(settings: Settings, store: Store, bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store, bus=bus)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test") as client:
            yield client


async def test_healthz_and_readyz_on_the_embedded_parts(settings: Settings, store: Store) -> None:
    async with api_client(settings, store, MemoryBus()) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"clickhouse": "ok", "kafka": "ok"}


async def test_readyz_follows_a_real_kafka_broker_going_down_and_up(settings: Settings, store: Store) -> None:
    broker = KafkaBroker(heap="256m")
    broker.start()
    try:
        async with api_client(settings, store, KafkaBus(broker.bootstrap)) as client:
            assert (await client.get("/readyz")).status_code == 200
            broker.stop()
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert "kafka" in down.json()["checks"]
            assert broker.bootstrap in down.json()["detail"]
            assert "clickhouse" not in down.json()["checks"]
            broker.start()
            assert (await client.get("/readyz")).status_code == 200
    finally:
        broker.close()


async def test_readyz_reports_clickhouse_down(settings: Settings) -> None:
    unreachable = Store("http://127.0.0.1:9/default", threads=1)  # nothing listens on the discard port
    try:
        async with api_client(settings, unreachable, MemoryBus()) as client:
            down = await client.get("/readyz")
            assert down.status_code == 503
            assert set(down.json()["checks"]) == {"clickhouse"}
    finally:
        unreachable.close()


async def test_api_keys_in_either_header_resolve_to_their_organization(settings: Settings, store: Store) -> None:
    acme = await create_api_key(store, "acme")
    globex = await create_api_key(store, "globex")
    async with api_client(settings, store, MemoryBus()) as client:
        by_vellum_header = await client.get("/v1/organization", headers={"X-API-KEY": acme.key})
        by_bearer = await client.get("/v1/organization", headers={"Authorization": f"Bearer {globex.key}"})
        assert by_vellum_header.json() == {"id": "acme"}
        assert by_bearer.json() == {"id": "globex"}


async def test_missing_or_wrong_keys_get_401_with_a_json_detail(settings: Settings, store: Store) -> None:
    acme = await create_api_key(store, "acme")
    async with api_client(settings, store, MemoryBus()) as client:
        for headers in (
            {},
            {"X-API-KEY": acme.key[:-1]},
            {"Authorization": "Bearer nope"},
            {"Authorization": f"Basic {acme.key}"},
        ):
            refused = await client.get("/v1/organization", headers=headers)
            assert refused.status_code == 401, headers
            assert isinstance(refused.json()["detail"], str) and refused.json()["detail"]
