"""The API's composition root: `create_app(settings)` builds the store, bus, producer and live hub in
its lifespan and closes them in reverse order; a pre-built store and bus (from `spanline dev` or tests)
are used and left open."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from spanline import __version__
from spanline.api.auth import KeyCache
from spanline.api.live import LiveHub
from spanline.api.outages import install_outage_handlers
from spanline.api.recent import RecentRequests
from spanline.api.routes import (
    actuals,
    execute,
    execute_workflow_stream,
    executions,
    health,
    interactly,
    monitoring,
    organization,
    otlp,
    runs,
    skeleton,
    stream,
    usage,
    workflows,
)
from spanline.api.state import AppState, ConsumerCounters
from spanline.api.ui import router as ui
from spanline.api.validation import install as install_validation_errors
from spanline.bus.factory import create_bus, ensure_topics
from spanline.bus.interface import Bus
from spanline.core.config import Settings
from spanline.store.store import Store


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    bus: Bus | None = None,
    consumer_metrics: ConsumerCounters | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with AsyncExitStack() as stack:
            app_store = store
            if app_store is None:
                app_store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
                stack.callback(app_store.close)
            app_bus = bus
            if app_bus is None:
                app_bus = create_bus(settings)
                stack.push_async_callback(app_bus.close)
            await ensure_topics(app_bus, settings)
            producer = app_bus.producer()
            await producer.start()
            stack.push_async_callback(producer.stop)
            hub = LiveHub(
                app_bus,
                settings.events_topic,
                settings.default_org,
                resume_group=settings.consumer_group,
                queue_bytes=settings.live_queue_bytes,
                buffer_execution_bytes=settings.live_buffer_execution_bytes,
                buffer_total_bytes=settings.live_buffer_total_bytes,
            )
            await hub.start()
            stack.push_async_callback(hub.stop)
            offsets = app_bus.offset_reader()
            stack.push_async_callback(offsets.close)
            state = AppState(
                settings,
                app_store,
                app_bus,
                KeyCache(settings.api_key_cache_seconds),
                producer,
                hub,
                RecentRequests(),
                offsets,
                consumer_metrics,
            )
            yield {"spanline": state}

    app = FastAPI(
        title="spanline",
        version=__version__,
        description="Vellum-compatible execution events, runs, spans and usage for LLM workflows.",
        lifespan=lifespan,
    )
    install_validation_errors(app)
    install_outage_handlers(app)
    for router in (
        health.router,
        organization.router,
        workflows.router,
        execute.router,
        execute_workflow_stream.router,
        actuals.router,
        executions.router,
        skeleton.router,
        stream.router,
        usage.router,
        runs.router,
        interactly.router,
        monitoring.router,
        otlp.router,
        ui.router,
    ):
        app.include_router(router)
    return app
