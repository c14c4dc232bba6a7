"""One live feed of `spanline.events` per API process, fanned out to subscribers by root execution.

Each subscriber has a bounded queue; one that falls behind by more than its queue is dropped (its
`overflowed` flag is set and its stream ends), so a slow client can neither stall the others nor grow
memory without bound.

The feed starts where the consumer group last committed (what is before that is in ClickHouse) and keeps
the recent events of each execution in a bounded buffer, handed to every new subscriber: stored history
from ClickHouse + this buffer + what arrives next cover an execution without a gap, as long as the
consumer is not further behind than the buffer holds (`buffer_total` events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, Bus, BusConsumer, BusMessage, TopicPartition
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
    def __init__(
        self,
        bus: Bus,
        topic: str,
        default_org: str,
        *,
        resume_group: str | None = None,
        queue_size: int = 10_000,
        buffer_per_execution: int = 10_000,
        buffer_total: int = 100_000,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._default_org = default_org
        self._resume_group = resume_group
        self._queue_size = queue_size
        self._buffer_per_execution = buffer_per_execution
        self._buffer_total = buffer_total
        self._subscribers: dict[UUID, set[Subscription]] = defaultdict(set)
        self._recent: OrderedDict[UUID, deque[LiveEvent]] = OrderedDict()
        self._buffered = 0
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Returns once the feed is positioned: every event produced after this is seen."""
        if self._task is not None:
            return
        self._consumer = self._bus.consumer([self._topic], group_id=None, from_beginning=False)
        await self._consumer.start()
        if self._resume_group is not None:
            # Partitions the consumer group never committed on start at the end: nothing to catch up on.
            try:
                committed = await self._bus.committed_offsets(self._resume_group, self._topic)
            except Exception as exc:  # no group coordinator yet, say: live events still flow from now on
                log.warning("live feed starts at the end: no committed offsets of %s (%s)", self._resume_group, exc)
            else:
                await self._consumer.seek(committed)
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
        for item in self._recent.get(execution_id, ()):
            if self._org_of(item.message) == org:
                subscription.offer(item)
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

    def end_offsets(self) -> dict[TopicPartition, int]:
        """Each partition's end offset as the feed last saw it (the feed reads every partition)."""
        if self._consumer is None:
            return {}
        ends = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        return {tp: end for tp, end in ends.items() if end is not None}

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

    def _org_of(self, message: BusMessage) -> str:
        org_header = message.header(ORG_HEADER)
        return org_header.decode(errors="replace") if org_header else self._default_org

    def _dispatch(self, message: BusMessage) -> None:
        try:
            event = decode_event(message.value)
        except EventDecodeError:
            return  # the consumer sends it to the DLQ; live listeners never see it
        root = root_execution_id(event)
        if root is None:
            return
        item = LiveEvent(message, event)
        self._remember(root, item)
        org = self._org_of(message)
        for subscription in list(self._subscribers.get(root, ())):
            if subscription.org == org:
                subscription.offer(item)

    def _remember(self, root: UUID, item: LiveEvent) -> None:
        """Keep the execution's recent events for subscribers that join later; oldest executions go first."""
        buffer = self._recent.get(root)
        if buffer is None:
            buffer = self._recent[root] = deque(maxlen=self._buffer_per_execution)
        else:
            self._recent.move_to_end(root)
        if len(buffer) == buffer.maxlen:
            self._buffered -= 1
        buffer.append(item)
        self._buffered += 1
        while self._buffered > self._buffer_total and self._recent:
            _, evicted = self._recent.popitem(last=False)
            self._buffered -= len(evicted)
