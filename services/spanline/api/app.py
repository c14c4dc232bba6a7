"""The API's composition root: `create_app(settings)` builds the store and bus in its lifespan and
closes them in reverse order; pre-built ones (from `spanline dev` or tests) are used and left open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from spanline import __version__
from spanline.api.auth import KeyCache
from spanline.api.routes import health, organization
from spanline.api.state import AppState
from spanline.bus.factory import create_bus
from spanline.bus.interface import Bus
from spanline.core.config import Settings
from spanline.store.store import Store


def create_app(settings: Settings, *, store: Store | None = None, bus: Bus | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        own_store = store is None
        own_bus = bus is None
        app_store = store or Store(settings.clickhouse_dsn, threads=settings.store_threads)
        app_bus = bus or create_bus(settings)
        try:
            yield {"spanline": AppState(settings, app_store, app_bus, KeyCache(settings.api_key_cache_seconds))}
        finally:
            if own_bus:
                await app_bus.close()
            if own_store:
                app_store.close()

    app = FastAPI(
        title="spanline",
        version=__version__,
        description="Vellum-compatible execution events, runs, spans and usage for LLM workflows.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(organization.router)
    return app
