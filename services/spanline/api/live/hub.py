"""One live feed of `spanline.events` per API process, fanned out to subscribers by root execution.

Work is done once per event, never once per subscriber: the hub reads each message's routing fields with
a light decode (`lineage.decode_route`), and the first time an event is to reach a subscriber it validates
it (the full typed decode, result discarded: malformed events, which the consumer sends to the DLQ, are
never delivered live) and builds its SSE frame bytes. Every subscriber then gets the same `LiveEvent`
object, frame included, grouped per fetch into a `LiveBatch` (batch.py) whose joined frames are built once
too; a subscriber's cost per fetched batch is one `deque.append` and one wake-up.

Each subscriber has a bounded queue; one that falls behind by more than its queue is dropped (its
`overflowed` flag is set, its queue emptied and its stream ends), so a slow client can neither stall the
others nor grow memory without bound.

The feed starts where the consumer group last committed (what is before that is in ClickHouse) and keeps
the recent events of each (execution, organization) in a buffer bounded by bytes (per execution and in
total), handed to every new subscriber (per organization: the same execution id published under two
organizations is two executions, and one cannot push the other's events out of the buffer): stored history
from ClickHouse + this buffer + what arrives next cover an execution without a gap, as long as the consumer
is not further behind than the buffer holds. When the buffer had to let events go,
the hub remembers below which offset it no longer holds them (`evicted_through`); a new subscriber gets it as
`Subscription.unbuffered_below`, and its stream first waits for the consumer to have stored them
(routes/stream.py) instead of skipping them. The buffer also marks an event
produced twice (same id, later offset) as a `duplicate` while its first copy is still buffered.

`LiveHub.reads` shares the store reads that subscribers joining at the same time make (`SharedReads`).

The pieces: frames.py (one event and its SSE frame), batch.py (a fetch's events of one execution),
subscription.py (a subscriber's queue), buffer.py
(an execution's recent events), shared_reads.py (single-flight reads); this module tails the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from uuid import UUID

from spanline.api.live.batch import split
from spanline.api.live.buffer import ExecutionBuffer
from spanline.api.live.frames import LiveEvent
from spanline.api.live.shared_reads import SharedReads
from spanline.api.live.subscription import Subscription
from spanline.bus.interface import Bus, BusConsumer, BusMessage, TopicPartition

# How many executions' eviction marks are kept (a few dozen bytes each; the oldest go first).
UNBUFFERED_NOTES = 100_000

log = logging.getLogger(__name__)


class LiveHub:
    def __init__(
        self,
        bus: Bus,
        topic: str,
        default_org: str,
        *,
        resume_group: str | None = None,
        queue_size: int = 10_000,
        queue_bytes: int = 32 * 1024 * 1024,
        buffer_execution_bytes: int = 16 * 1024 * 1024,
        buffer_total_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self._bus = bus
        self._topic = topic
        self._default_org = default_org
        self._resume_group = resume_group
        self._queue_size = queue_size
        self._queue_bytes = queue_bytes
        self._buffer_execution_bytes = buffer_execution_bytes
        self._buffer_total_bytes = buffer_total_bytes
        # Keyed by (root execution, org): dispatch needs no per-subscriber org check.
        self._subscribers: dict[tuple[UUID, str], set[Subscription]] = {}
        self._recent: OrderedDict[tuple[UUID, str], ExecutionBuffer] = OrderedDict()
        self._buffered_bytes = 0
        # Per (execution, org), (partition, offset): events below it may have left the buffer. Bounded, oldest first.
        self._unbuffered: OrderedDict[tuple[UUID, str], tuple[TopicPartition, int]] = OrderedDict()
        self._consumer: BusConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.reads = SharedReads()  # for the reads every new subscriber of an execution makes

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
        subscription = Subscription(execution_id, org, self._queue_size, self._queue_bytes)
        key = (execution_id, org)
        subscription.unbuffered_below = self._unbuffered.get(key)
        buffer = self._recent.get(key)
        if buffer is not None:
            # In offset order, which is what prepare() relies on.
            for batch in split([item for item in buffer.items if buffer.prepare(item)]):
                subscription.offer_batch(batch)
        self._subscribers.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            subscription.close()
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[key]

    def end_offsets(self) -> dict[TopicPartition, int]:
        """Each partition's end offset as the feed last saw it (the feed reads every partition)."""
        if self._consumer is None:
            return {}
        ends = {tp: self._consumer.highwater(tp) for tp in self._consumer.assignment()}
        return {tp: end for tp, end in ends.items() if end is not None}

    def buffered_bytes(self) -> int:
        return self._buffered_bytes

    def evicted_through(self, execution_id: UUID, partition: int, org: str) -> int:
        """The highest offset of `execution_id`'s events (in `partition`, where it lives) that the hub may
        have let go, or -1: events at or below it are not handed over from the buffer, so a subscriber that
        needs them reads them from the store."""
        noted = self._unbuffered.get((execution_id, org))
        return noted[1] - 1 if noted is not None and noted[0].partition == partition else -1

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
            self._dispatch(messages)

    def _dispatch(self, messages: Iterable[BusMessage]) -> None:
        """Route a fetched batch; each execution's share becomes shared `LiveBatch`es (of at most a chunk),
        offered to each of its subscribers at once (one wake-up per fetch)."""
        routed: dict[tuple[UUID, str], list[LiveEvent]] = {}
        for message in messages:
            item = LiveEvent.route(message, self._default_org)
            if item is None:
                continue  # the consumer sends it to the DLQ; live listeners never see it
            buffer = self._remember(item)
            key = (item.root, item.org)
            # Validate and frame only what someone reads now; the rest when a subscriber takes it from the buffer.
            if key in self._subscribers and buffer.prepare(item):
                routed.setdefault(key, []).append(item)
        # No await since the items were remembered: no subscriber joins in between (no gap, no duplicate).
        for key, items in routed.items():
            subscriptions = self._subscribers.get(key, ())
            for batch in split(items):
                for subscription in subscriptions:
                    subscription.offer_batch(batch)

    def _remember(self, item: LiveEvent) -> ExecutionBuffer:
        """Keep the execution's recent events for subscribers that join later; oldest executions go first."""
        key = (item.root, item.org)
        buffer = self._recent.get(key)
        if buffer is None:
            buffer = self._recent[key] = ExecutionBuffer(self._buffer_execution_bytes)
        else:
            self._recent.move_to_end(key)
        self._buffered_bytes += buffer.add(item)
        if buffer.evicted_through >= 0:
            self._note_unbuffered(key, item.message.partition, buffer.evicted_through + 1)
        while self._buffered_bytes > self._buffer_total_bytes and len(self._recent) > 1:
            evicted_key, evicted = self._recent.popitem(last=False)
            self._buffered_bytes -= evicted.bytes
            if evicted.items:
                self._note_unbuffered(evicted_key, evicted.items[-1].message.partition, evicted.items[-1].offset + 1)
        return buffer

    def _note_unbuffered(self, key: tuple[UUID, str], partition: int, below: int) -> None:
        self._unbuffered[key] = (TopicPartition(self._topic, partition), below)
        self._unbuffered.move_to_end(key)
        while len(self._unbuffered) > UNBUFFERED_NOTES:
            self._unbuffered.popitem(last=False)
