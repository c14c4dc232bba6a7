"""A live subscriber's bounded queue: one that falls behind by more than its queue is dropped."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from uuid import UUID

from spanline.api.live.frames import LiveEvent
from spanline.bus.interface import TopicPartition


class Subscription:
    """A subscriber's bounded queue of shared LiveEvents, read by one task."""

    def __init__(self, execution_id: UUID, org: str, limit: int, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.execution_id = execution_id
        self.org = org
        self.limit = limit  # events
        self.max_bytes = max_bytes  # of queued frames: events may be up to SPANLINE_MAX_EVENT_BYTES each
        self.overflowed = False
        self.closed = False
        # Set by the hub when it dropped some of this execution's events below this offset (see hub.py).
        self.unbuffered_below: tuple[TopicPartition, int] | None = None
        self._items: deque[LiveEvent] = deque()
        self._size = 0  # bytes of the queued frames
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, item: LiveEvent) -> None:
        self.offer_many((item,), len(item.frame))

    def offer_many(self, items: Sequence[LiveEvent], size: int) -> None:
        """Queue events in order (`size`: their frames' bytes); one wake-up for all of them."""
        if self.closed:
            return
        if len(self._items) + len(items) > self.limit or self._size + size > self.max_bytes:  # too far behind: drop it
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
