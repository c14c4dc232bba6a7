"""The consumer service's composition root: build store, bus, writer and loop; run until SIGTERM or
SIGINT; close in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Final

from spanline.bus.factory import create_bus, ensure_topics
from spanline.bus.interface import Bus
from spanline.consumer.dlq import DeadLetterPublisher
from spanline.consumer.loop import ConsumerLoop, LoopOptions
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.writer import EventBatchWriter
from spanline.core.config import Settings
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

log = logging.getLogger(__name__)


# For a process that also serves SSE (spanline dev): shorter young-collection pauses, at the price of more
# of them (bench/README.md, "GC pauses" and §2 after).
SERVING_GEN0_THRESHOLD: Final = 10_000


def tune_gc_for_batches(gen0_threshold: int = 100_000) -> None:
    """A batch keeps its decoded events alive; the default gen-0 threshold would re-scan them hundreds of
    times per batch. A process that also serves live streams wants a lower threshold: each young
    collection pauses every thread (bench/README.md, "GC pauses")."""
    gc.set_threshold(gen0_threshold, 50, 1000)


def loop_options(settings: Settings) -> LoopOptions:
    return LoopOptions(
        default_org=settings.default_org,
        max_event_bytes=settings.max_event_bytes,
        max_records=settings.consumer_max_records,
        poll_ms=settings.consumer_poll_ms,
        derive_interval_s=settings.consumer_derive_interval_ms / 1000,
        log_interval_s=settings.consumer_log_interval_s,
    )


async def run_consumer(
    settings: Settings,
    *,
    store: Store,
    bus: Bus,
    metrics: ConsumerMetrics | None = None,
    stop: asyncio.Event | None = None,
) -> ConsumerMetrics:
    """Consume until `stop` is set (or forever); for embedding in `spanline dev` and in tests."""
    consumer = bus.consumer([settings.events_topic], group_id=settings.consumer_group)
    producer = bus.producer()
    await producer.start()
    await consumer.start()
    metrics = metrics or ConsumerMetrics()
    loop = ConsumerLoop(
        consumer,
        EventBatchWriter(store, on_stage=metrics.add_stage),
        DeadLetterPublisher(producer, settings.dlq_topic),
        loop_options(settings),
        metrics,
    )
    watcher = asyncio.create_task(_forward_stop(stop, loop)) if stop is not None else None
    try:
        await loop.run()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await consumer.stop()
        await producer.stop()
    return loop.metrics


async def _forward_stop(stop: asyncio.Event, loop: ConsumerLoop) -> None:
    await stop.wait()
    loop.request_stop()


async def run(settings: Settings) -> None:
    """`spanline consumer`: migrate, make sure the topics exist, consume until SIGTERM/SIGINT."""
    tune_gc_for_batches()
    store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
    bus = create_bus(settings)
    stop = asyncio.Event()
    running = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(signum, stop.set)
    try:
        await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
        await ensure_topics(bus, settings)
        log.info("consumer: group %s on %s", settings.consumer_group, settings.events_topic)
        metrics = await run_consumer(settings, store=store, bus=bus, stop=stop)
        log.info("consumer: stopped cleanly after %d events", metrics.events)
    finally:
        await bus.close()
        store.close()
