"""One live feed of `spanline.events` per API process, fanned out to subscribers by root execution.

Each subscriber has a bounded queue; one that falls behind by more than its queue is dropped (its
`overflowed` flag is set and its stream ends), so a slow client can neither stall the others nor grow
memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, Bus, BusConsumer, BusMessage
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import root_execution_id
from spanline.events.models import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    message: BusMessage
    event: Event


@dataclass(eq=False)
class Subscription:
    execution_id: UUID
    org: str
    limit: int
    queue: asyncio.Queue[LiveEvent | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    closed: bool = False

    def offer(self, item: LiveEvent) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= self.limit:  # the client fell too far behind: drop it
            self.overflowed = True
            self.close()
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)  # the end marker; the limit is enforced in offer()

    async def next(self, timeout_s: float | None = None) -> LiveEvent | None:
        """The next event, or None when the subscription ended (closed, overflowed) or timed out."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class LiveHub:
    def __init__(self, bus: Bus, topic: str, default_org: str, queue_size: int = 10_000) -> None:
        self._bus = bus
        self._topic = topic
        self._default_org = default_org
        self._queue_size = queue_size
        self._subscribers: dict[UUID, set[Subscription]] = defaultdict(set)
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once the feed is positioned: every event produced after this is seen."""
        if self._task is not None:
            return
        self._consumer = self._bus.consumer([self._topic], group_id=None, from_beginning=False)
        await self._consumer.start()
        self._task = asyncio.create_task(self._pump(self._consumer), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription.close()

    @contextlib.contextmanager
    def subscribe(self, execution_id: UUID, org: str) -> Iterator[Subscription]:
        subscription = Subscription(execution_id, org, self._queue_size)
        self._subscribers[execution_id].add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()
            subscribers = self._subscribers.get(execution_id)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[execution_id]

    def subscriber_count(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._subscribers.values())

    async def _pump(self, consumer: BusConsumer) -> None:
        while True:
            try:
                messages = await consumer.getmany(max_records=5000, timeout_ms=500)
            except Exception:
                log.exception("live feed read failed; retrying")
                await asyncio.sleep(1)  # back off before the next read
                continue
            for message in messages:
                self._dispatch(message)

    def _dispatch(self, message: BusMessage) -> None:
        if not self._subscribers:
            return
        key_root = _uuid_or_none(message.key)
        if key_root is not None and key_root not in self._subscribers:
            return  # producers key by root execution: nobody listens to this one
        try:
            event = decode_event(message.value)
        except EventDecodeError:
            return  # the consumer sends it to the DLQ; live listeners never see it
        root = root_execution_id(event)
        if root is None:
            return
        org_header = message.header(ORG_HEADER)
        org = org_header.decode() if org_header else self._default_org
        for subscription in list(self._subscribers.get(root, ())):
            if subscription.org == org:
                subscription.offer(LiveEvent(message, event))


def _uuid_or_none(key: bytes | None) -> UUID | None:
    if key is None:
        return None
    try:
        return UUID(key.decode())
    except (UnicodeDecodeError, ValueError):
        return None
