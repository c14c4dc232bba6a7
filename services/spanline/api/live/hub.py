"""One live feed of `spanline.events` per API process, fanned out to subscribers by root execution.

Work is done once per event, never once per subscriber: the hub reads each message's routing fields with
a light decode (`lineage.decode_route`), and the first time an event is to reach a subscriber it validates
it (the full typed decode, result discarded: malformed events, which the consumer sends to the DLQ, are
never delivered live) and builds its SSE frame bytes. Every subscriber then gets the same `LiveEvent`
object, frame included; a subscriber's cost per fetched batch is one `deque.extend` and one wake-up.

Each subscriber has a bounded queue; one that falls behind by more than its queue is dropped (its
`overflowed` flag is set, its queue emptied and its stream ends), so a slow client can neither stall the
others nor grow memory without bound.

The feed starts where the consumer group last committed (what is before that is in ClickHouse) and keeps
the recent events of each execution in a bounded buffer, handed to every new subscriber: stored history
from ClickHouse + this buffer + what arrives next cover an execution without a gap, as long as the
consumer is not further behind than the buffer holds (`buffer_total` events). The buffer also marks an
event produced twice (same id, later offset) as a `duplicate` while its first copy is still buffered.

`LiveHub.reads` shares the store reads that subscribers joining at the same time make (`SharedReads`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast
from uuid import UUID

from sse_starlette import ServerSentEvent

from spanline.bus.interface import Bus, BusConsumer, BusMessage, TopicPartition
from spanline.consumer.decode import org_of
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import decode_route, route_root_execution_id
from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES, Event

log = logging.getLogger(__name__)

T = TypeVar("T")


def sse_frame(offset: int, name: str, payload: bytes) -> bytes:
    """One SSE message, byte for byte what sse-starlette's `ServerSentEvent(payload, id=str(offset),
    event=name).encode()` gives (its default `\\r\\n` separator), built without its per-call overhead."""
    if b"\n" in payload or b"\r" in payload or "\n" in name or "\r" in name:
        # Line breaks (pretty-printed JSON): sse-starlette splits them into several `data:` lines; let it,
        # so the wire stays identical. (msgspec does not check UTF-8 in fields it skips: replace, never raise.)
        return ServerSentEvent(payload.decode(errors="replace"), id=str(offset), event=name).encode()
    return b"id: %d\r\nevent: %b\r\ndata: %b\r\n\r\n" % (offset, name.encode(), payload)


class LiveEvent:
    """One event of the feed, shared by every subscriber. Routing fields come from the light decode;
    `prepare()` (the hub's, before any delivery) validates once and sets `event_id`, `frame`, `ends_root`
    and (the hub's buffer) `duplicate`."""

    __slots__ = (
        "_event",
        "_id",
        "duplicate",
        "ends_root",
        "event_id",
        "frame",
        "message",
        "name",
        "offset",
        "org",
        "root",
        "span_id",
        "valid",
    )

    def __init__(self, message: BusMessage, org: str, root: UUID, name: str, span_id: UUID, event_id: UUID) -> None:
        self.message = message
        self.org = org
        self.root = root
        self.name = name
        self.span_id = span_id
        self.offset = message.offset
        self.valid: bool | None = None  # None until prepare()
        self.event_id = ""
        self.frame = b""
        self.ends_root = False
        self.duplicate = False
        self._id = event_id
        self._event: Event | None = None

    @classmethod
    def route(cls, message: BusMessage, default_org: str) -> LiveEvent | None:
        """The message's routing fields, or None when it cannot be routed (the consumer DLQs those)."""
        org = org_of(message, default_org)  # the consumer's rule, so live and stored agree
        if org is None:
            return None
        route = decode_route(message.value)
        if route is None:
            return None
        root = route_root_execution_id(route)
        if root is None:
            return None
        return cls(message, org, root, route.name, route.span_id, route.id)

    def prepare(self) -> bool:
        """Validate once and build the frame once; False for a malformed event (never to be delivered)."""
        if self.valid is None:
            try:
                decode_event(self.message.value)  # validation only: the typed event is not kept
            except EventDecodeError:
                self.valid = False
            else:
                self.valid = True
                self.event_id = str(self._id)  # a str, as the joiner and history compare it
                self.frame = sse_frame(self.offset, self.name, self.message.value)
                self.ends_root = self.span_id == self.root and self.name in TERMINAL_WORKFLOW_EVENT_NAMES
        return self.valid

    @property
    def event(self) -> Event:
        """The typed event, decoded on first use (the execute endpoints read bodies; SSE never does)."""
        if self._event is None:
            self._event = decode_event(self.message.value)
        return self._event


class Subscription:
    """A subscriber's bounded queue of shared LiveEvents, read by one task."""

    def __init__(self, execution_id: UUID, org: str, limit: int) -> None:
        self.execution_id = execution_id
        self.org = org
        self.limit = limit
        self.overflowed = False
        self.closed = False
        self._items: deque[LiveEvent] = deque()
        self._size = 0  # bytes of the queued frames
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, item: LiveEvent) -> None:
        self.offer_many((item,), len(item.frame))

    def offer_many(self, items: Sequence[LiveEvent], size: int) -> None:
        """Queue events in order (`size`: their frames' bytes); one wake-up for all of them."""
        if self.closed:
            return
        if len(self._items) + len(items) > self.limit:  # the client fell too far behind: drop it
            self.overflowed = True
            self.abandon()
            return
        self._items.extend(items)
        self._size += size
        self._wake()

    def close(self) -> None:
        """No more events: the reader gets what is queued, then the end."""
        if not self.closed:
            self.closed = True
            self._wake()

    def abandon(self) -> None:
        """The reader is gone or too slow: forget what is queued and end at once."""
        self._items.clear()
        self._size = 0
        self.close()

    def pending(self) -> int:
        return len(self._items)

    async def next(self, timeout_s: float | None = None) -> LiveEvent | None:
        """The next event, or None when the subscription ended (closed, overflowed) or timed out."""
        if not await self._wait(timeout_s):
            return None
        item = self._items.popleft()
        self._size -= len(item.frame)
        return item

    async def batch(self, max_items: int, max_bytes: int) -> list[LiveEvent] | None:
        """Everything queued, up to `max_items` events or about `max_bytes` of frames (at least one
        event); waits while nothing is. None when the subscription ended."""
        if not await self._wait(None):
            return None
        if len(self._items) <= max_items and self._size <= max_bytes:  # the usual case: take it all
            items = list(self._items)
            self._items.clear()
            self._size = 0
            return items
        items = []
        size = 0
        while self._items and len(items) < max_items and size < max_bytes:
            item = self._items.popleft()
            items.append(item)
            size += len(item.frame)
        self._size -= size
        return items

    async def _wait(self, timeout_s: float | None) -> bool:
        """True once an event is queued; False when the subscription ended or the timeout passed."""
        while not self._items:
            if self.closed:
                return False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, timeout_s)
            except TimeoutError:
                return False
            finally:
                self._waiter = None
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _ExecutionBuffer:
    """An execution's recent events, and which (org, event id) of its valid ones it has seen first."""

    __slots__ = ("first", "items")

    def __init__(self, size: int) -> None:
        self.items: deque[LiveEvent] = deque(maxlen=size)
        self.first: dict[tuple[str, str], LiveEvent] = {}

    def add(self, item: LiveEvent) -> int:
        """Append; returns how many events fell out (0 or 1)."""
        evicted = 0
        if len(self.items) == self.items.maxlen:
            oldest = self.items.popleft()
            key = (oldest.org, oldest.event_id)
            if oldest.valid and self.first.get(key) is oldest:
                del self.first[key]
            evicted = 1
        self.items.append(item)
        return evicted

    def prepare(self, item: LiveEvent) -> bool:
        """Validate and frame the event; mark it a duplicate when a valid copy came before it. Events of an
        (execution, org) are prepared in offset order (the hub's invariant), so the first copy is first."""
        if item.valid is not None:
            return item.valid
        if not item.prepare():
            return False
        original = self.first.setdefault((item.org, item.event_id), item)
        item.duplicate = original is not item
        return True


class SharedReads:
    """Identical reads (same key) asked for at the same time run once, and every caller still gets the
    answer of a read that started after it asked: what reading alone would give, without the duplicates.
    A burst of 1,000 clients opening one execution's stream then costs a few store queries, not 3,000
    (chDB runs one query at a time)."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Any]] = {}
        self._queued: dict[Hashable, asyncio.Task[Any]] = {}  # starts when the running one ends

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        task = self._queued.get(key)
        if task is None:
            task = asyncio.create_task(self._run(key, self._running.get(key), read))
            self._queued[key] = task
        # Shielded: a caller that goes away does not cancel the read for the others.
        return cast(T, await asyncio.shield(task))

    async def _run(self, key: Hashable, previous: asyncio.Task[Any] | None, read: Callable[[], Awaitable[T]]) -> T:
        if previous is not None:
            await asyncio.wait([previous])  # its outcome is its callers'; this read starts after it
        this = self._queued.pop(key)  # from now on, a new caller needs a read that starts later
        self._running[key] = this
        try:
            return await read()
        finally:
            if self._running.get(key) is this:
                del self._running[key]


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
        # Keyed by (root execution, org): dispatch needs no per-subscriber org check.
        self._subscribers: dict[tuple[UUID, str], set[Subscription]] = {}
        self._recent: OrderedDict[UUID, _ExecutionBuffer] = OrderedDict()
        self._buffered = 0
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
        subscription = Subscription(execution_id, org, self._queue_size)
        buffer = self._recent.get(execution_id)
        if buffer is not None:
            for item in buffer.items:  # in offset order, which is what prepare() relies on
                if item.org == org and buffer.prepare(item):
                    subscription.offer(item)
        key = (execution_id, org)
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
        """Route a fetched batch; each subscriber gets its share in one offer (one wake-up per batch)."""
        routed: dict[tuple[UUID, str], list[LiveEvent]] = {}
        sizes: dict[tuple[UUID, str], int] = {}
        for message in messages:
            item = LiveEvent.route(message, self._default_org)
            if item is None:
                continue  # the consumer sends it to the DLQ; live listeners never see it
            buffer = self._remember(item)
            key = (item.root, item.org)
            # Validate and frame only what someone reads now; the rest when a subscriber takes it from the buffer.
            if key in self._subscribers and buffer.prepare(item):
                routed.setdefault(key, []).append(item)
                sizes[key] = sizes.get(key, 0) + len(item.frame)
        # No await since the items were remembered: no subscriber joins in between (no gap, no duplicate).
        for key, items in routed.items():
            for subscription in self._subscribers.get(key, ()):
                subscription.offer_many(items, sizes[key])

    def _remember(self, item: LiveEvent) -> _ExecutionBuffer:
        """Keep the execution's recent events for subscribers that join later; oldest executions go first."""
        buffer = self._recent.get(item.root)
        if buffer is None:
            buffer = self._recent[item.root] = _ExecutionBuffer(self._buffer_per_execution)
        else:
            self._recent.move_to_end(item.root)
        self._buffered += 1 - buffer.add(item)
        while self._buffered > self._buffer_total and len(self._recent) > 1:
            _, evicted = self._recent.popitem(last=False)
            self._buffered -= len(evicted.items)
        return buffer
