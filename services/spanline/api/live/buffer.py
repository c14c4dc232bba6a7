"""The recent events of one execution, handed to subscribers that join late, and the first copy of each
event id (a later copy is marked a duplicate). Bounded by bytes: events may be up to SPANLINE_MAX_EVENT_BYTES,
so a count bound would not bound memory."""

from __future__ import annotations

from collections import deque
from typing import Final

from spanline.api.live.frames import LiveEvent

# Per event beyond its bytes: the LiveEvent, its entry in `first`, the deque slot (measured order of magnitude).
_OVERHEAD_BYTES: Final = 512


def held_bytes(item: LiveEvent) -> int:
    """What a buffered event holds: its message bytes and, once prepared, an SSE frame of about the same size
    (counted from the start, so preparing a buffered event never takes the buffer over its bound)."""
    return 2 * len(item.message.value) + _OVERHEAD_BYTES


class ExecutionBuffer:
    """An execution's recent events (at most `max_bytes`, oldest out first, always the newest one), and which
    (org, event id) of its valid ones it has seen first. `evicted_through` is the highest offset it let go
    (-1: none): a subscriber needing an event at or below it must read it from the store."""

    __slots__ = ("bytes", "evicted_through", "first", "items", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: deque[LiveEvent] = deque()
        self.first: dict[tuple[str, str], LiveEvent] = {}
        self.bytes = 0
        self.evicted_through = -1

    @property
    def lowest_offset(self) -> int | None:
        """The lowest offset still buffered (None when empty)."""
        return self.items[0].offset if self.items else None

    def add(self, item: LiveEvent) -> int:
        """Append; returns the bytes this changed the buffer by (negative when more fell out than came in)."""
        before = self.bytes
        self.items.append(item)
        self.bytes += held_bytes(item)
        while self.bytes > self.max_bytes and len(self.items) > 1:
            self._evict_oldest()
        return self.bytes - before

    def _evict_oldest(self) -> None:
        oldest = self.items.popleft()
        self.bytes -= held_bytes(oldest)
        self.evicted_through = max(self.evicted_through, oldest.offset)
        key = (oldest.org, oldest.event_id)
        if oldest.valid and self.first.get(key) is oldest:
            del self.first[key]

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
