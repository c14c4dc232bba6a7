"""The recent events of one execution, handed to subscribers that join late, and the first copy of each
event id (a later copy is marked a duplicate)."""

from __future__ import annotations

from collections import deque

from spanline.api.live.frames import LiveEvent


class ExecutionBuffer:
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
