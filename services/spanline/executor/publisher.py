"""Sends emitted events to the bus in emission order: keyed by root execution_id (one execution stays
in one partition, in order) with the organization in the `spanline-org` header."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, BusProducer
from spanline.events.codec import encode_event
from spanline.events.models import Event

log = logging.getLogger(__name__)

_Item = tuple[str, UUID, Event]


class EventPublisher:
    def __init__(self, producer: BusProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            await self._producer.start()
            self._task = asyncio.create_task(self._drain_forever(), name="event-publisher")

    def emit(self, org: str, root_execution_id: UUID, event: Event) -> None:
        """Called synchronously from span processors and the runner; never blocks."""
        self._queue.put_nowait((org, root_execution_id, event))

    async def _drain_forever(self) -> None:
        while True:
            item = await self._queue.get()
            batch = [item]
            while not self._queue.empty():  # send a burst, then flush once
                batch.append(self._queue.get_nowait())
            try:
                for org, root, event in batch:
                    await self._producer.send(
                        self._topic,
                        encode_event(event),
                        key=str(root).encode(),
                        headers=((ORG_HEADER, org.encode()),),
                    )
                await self._producer.flush()
            except Exception:
                log.exception("could not publish %d event(s)", len(batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def drain(self) -> None:
        """Wait until everything emitted so far is sent and flushed."""
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is None:
            return
        await self.drain()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._producer.stop()
