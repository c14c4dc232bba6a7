"""A live subscriber's bounded queue: one that falls behind by more than its queue is dropped."""

from __future__ import annotations

import asyncio
from collections import deque
from uuid import UUID

from spanline.api.live.batch import LiveBatch
from spanline.api.live.frames import LiveEvent
from spanline.bus.interface import TopicPartition


class Subscription:
    """A subscriber's bounded queue of shared LiveEvents, read by one task. It queues the hub's batches
    as they are (shared with the execution's other subscribers); a reader takes whole batches
    (`batches`) or events (`batch`, `next`)."""

    def __init__(self, execution_id: UUID, org: str, limit: int, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.execution_id = execution_id
        self.org = org
        self.limit = limit  # events
        self.max_bytes = max_bytes  # of queued frames: events may be up to SPANLINE_MAX_EVENT_BYTES each
        self.overflowed = False
        self.closed = False
        # Set by the hub when it dropped some of this execution's events below this offset (see hub.py).
        self.unbuffered_below: tuple[TopicPartition, int] | None = None
        self._batches: deque[LiveBatch] = deque()
        self._head = 0  # events of the first batch already taken (by `batch` or `next`)
        self._count = 0  # queued events
        self._size = 0  # bytes of the queued frames
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, item: LiveEvent) -> None:
        self.offer_batch(LiveBatch((item,), len(item.frame)))

    def offer_batch(self, batch: LiveBatch) -> None:
        """Queue a batch (the same object for every subscriber of its execution); one wake-up."""
        if self.closed:
            return
        if self._count + len(batch) > self.limit or self._size + batch.size > self.max_bytes:  # too far behind: drop it
            self.overflowed = True
            self.abandon()
            return
        self._batches.append(batch)
        self._count += len(batch)
        self._size += batch.size
        self._wake()

    def close(self) -> None:
        """No more events: the reader gets what is queued, then the end."""
        if not self.closed:
            self.closed = True
            self._wake()

    def abandon(self) -> None:
        """The reader is gone or too slow: forget what is queued and end at once."""
        self._batches.clear()
        self._head = self._count = self._size = 0
        self.close()

    def pending(self) -> int:
        return self._count

    async def next(self, timeout_s: float | None = None) -> LiveEvent | None:
        """The next event, or None when the subscription ended (closed, overflowed) or timed out."""
        if not await self._wait(timeout_s):
            return None
        return self._pop_item()

    async def batch(self, max_items: int, max_bytes: int) -> list[LiveEvent] | None:
        """Everything queued, up to `max_items` events or about `max_bytes` of frames (at least one
        event); waits while nothing is. None when the subscription ended."""
        if not await self._wait(None):
            return None
        items = [self._pop_item()]
        size = len(items[0].frame)
        while self._count and len(items) < max_items and size < max_bytes:
            item = self._pop_item()
            items.append(item)
            size += len(item.frame)
        return items

    async def batches(self, max_items: int, max_bytes: int) -> list[LiveBatch] | None:
        """Whole queued batches, as many as fit in `max_items` events and `max_bytes` of frames (at least
        one); waits while nothing is queued. None when the subscription ended."""
        if not await self._wait(None):
            return None
        if self._head:  # the rest of a batch `next` or `batch` began: a batch of its own
            head = self._batches.popleft()
            self._batches.appendleft(LiveBatch(head.items[self._head :]))
            self._head = 0
        taken = [self._batches.popleft()]
        count, size = len(taken[0]), taken[0].size
        while self._batches:
            following = self._batches[0]
            if count + len(following) > max_items or size + following.size > max_bytes:
                break
            taken.append(self._batches.popleft())
            count += len(following)
            size += following.size
        self._count -= count
        self._size -= size
        return taken

    def _pop_item(self) -> LiveEvent:
        head = self._batches[0]
        item = head.items[self._head]
        self._head += 1
        if self._head == len(head):
            self._batches.popleft()
            self._head = 0
        self._count -= 1
        self._size -= len(item.frame)
        return item

    async def _wait(self, timeout_s: float | None) -> bool:
        """True once an event is queued; False when the subscription ended or the timeout passed."""
        while not self._count:
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
