"""The events of one execution that arrived in one fetch, shared by all its subscribers with their frames
joined once: a subscriber that is caught up sends the batch's bytes as they are, so its cost per wake-up
does not grow with the events in it (routes/stream.py falls back to event by event when it cannot)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from spanline.api.live.frames import LiveEvent

# One send's worth: enough to amortise the per-send cost, small enough to keep other streams moving.
CHUNK_FRAMES: Final = 500
CHUNK_BYTES: Final = 64 * 1024


class LiveBatch:
    """Prepared events of one (execution, org) in offset order. `plain`: offsets strictly increasing, no
    duplicate and no terminal event among them, so a stream that wants every type of event, has sent
    nothing at or past `first_offset` and none of `event_ids` sends exactly `frames`."""

    __slots__ = ("_event_ids", "_frames", "first_offset", "items", "last_offset", "plain", "size")

    def __init__(self, items: Sequence[LiveEvent], size: int | None = None) -> None:
        self.items = items
        self.size = sum(len(item.frame) for item in items) if size is None else size
        self.first_offset = items[0].offset
        self.last_offset = items[-1].offset
        self.plain = all(
            not item.duplicate and not item.ends_root and (index == 0 or item.offset > items[index - 1].offset)
            for index, item in enumerate(items)
        )
        self._frames: bytes | None = None
        self._event_ids: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def frames(self) -> bytes:
        """Every event's frame, joined on first use (one copy, shared by the subscribers that send it)."""
        if self._frames is None:
            self._frames = self.items[0].frame if len(self.items) == 1 else b"".join(i.frame for i in self.items)
        return self._frames

    @property
    def event_ids(self) -> tuple[str, ...]:
        if self._event_ids is None:
            self._event_ids = tuple(item.event_id for item in self.items)
        return self._event_ids


def split(
    items: Sequence[LiveEvent], max_items: int = CHUNK_FRAMES, max_bytes: int = CHUNK_BYTES
) -> Iterator[LiveBatch]:
    """`items` as batches of at most `max_items` events or about `max_bytes` of frames (at least one event)."""
    start, size = 0, 0
    for index, item in enumerate(items):
        if index > start and (index - start >= max_items or size + len(item.frame) > max_bytes):
            yield LiveBatch(items[start:index], size)
            start, size = index, 0
        size += len(item.frame)
    if start < len(items):
        yield LiveBatch(items[start:], size)
