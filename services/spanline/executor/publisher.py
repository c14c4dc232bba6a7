"""Sends emitted events to the bus in emission order: keyed by root execution_id (one execution stays
in one partition, in order) with the organization in the `spanline-org` header.

Nothing is dropped: an event leaves the queue only once the broker acknowledged it; a failed send is
retried (with backoff) for as long as the broker is away. The queue is bounded by backpressure: `emit`
is synchronous (span processors cannot wait), so runs call `wait_for_room` before each node and each
streamed delta and pause while `max_queued` events are unsent. The bound is exceeded by at most what the
runs in flight emit between two such waits (a node's few events each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, BusProducer, OutgoingMessage
from spanline.events.codec import encode_event
from spanline.events.models import Event

log = logging.getLogger(__name__)

_Item = tuple[str, UUID, Event]
_MAX_BATCH = 500
_MAX_BACKOFF_S = 2.0


class EventPublisher:
    def __init__(self, producer: BusProducer, topic: str, *, max_queued: int = 10_000) -> None:
        self._producer = producer
        self._topic = topic
        self._max_queued = max_queued
        self._queue: deque[_Item] = deque()
        self._emitted = 0  # events emitted so far
        self._acked = 0  # of those, acknowledged by the broker (always a prefix: sends are in order)
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def emitted(self) -> int:
        return self._emitted

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        if self._task is None:
            await self._producer.start()
            self._task = asyncio.create_task(self._send_forever(), name="event-publisher")

    def emit(self, org: str, root_execution_id: UUID, event: Event) -> None:
        """Called synchronously from span processors and the runner; never blocks, never drops."""
        self._queue.append((org, root_execution_id, event))
        self._emitted += 1
        self._wakeup.set()

    async def wait_for_room(self) -> None:
        """Return when fewer than `max_queued` events are unsent (the runner's backpressure)."""
        if len(self._queue) < self._max_queued:
            return
        async with self._progress:
            await self._progress.wait_for(lambda: len(self._queue) < self._max_queued)

    async def acked(self, count: int) -> None:
        """Return once the first `count` events emitted are acknowledged by the broker."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._acked >= count)

    async def drain(self) -> None:
        """Wait until everything emitted so far is acknowledged."""
        await self.acked(self._emitted)

    async def _send_forever(self) -> None:
        failures = 0
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue[index] for index in range(min(_MAX_BATCH, len(self._queue)))]
            messages = [
                OutgoingMessage(encode_event(event), key=str(root).encode(), headers=((ORG_HEADER, org.encode()),))
                for org, root, event in batch
            ]
            try:
                await self._producer.send_acked(self._topic, messages)
            except Exception as exc:  # the broker is away or refused: keep the batch, try again
                failures += 1
                if failures == 1 or failures % 30 == 0:
                    log.warning("could not publish %d event(s), retrying (attempt %d): %s", len(batch), failures, exc)
                # A resend may duplicate what the broker did take; the events' ids are deterministic, so
                # the consumer keeps one copy.
                await asyncio.sleep(min(_MAX_BACKOFF_S, 0.05 * 2**failures))
                continue
            if failures:
                log.info("publishing again after %d failed attempt(s)", failures)
            failures = 0
            for _ in batch:
                self._queue.popleft()
            async with self._progress:
                self._acked += len(batch)
                self._progress.notify_all()

    async def stop(self, timeout_s: float = 30.0) -> None:
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.drain(), timeout_s)
        except TimeoutError:
            log.error("stopping with %d event(s) unsent: the broker did not take them in %gs", self.queued, timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        await self._producer.stop()
