"""Which run-request offsets an executor may commit: per partition, the lowest offset whose run has not
ended (and had its events acknowledged), or one past the highest fetched when every run has ended. A
request is therefore committed only after its run ended; a worker that dies leaves its requests to be
redelivered to another member of the group."""

from __future__ import annotations

from spanline.bus.interface import TopicPartition


class RequestOffsets:
    def __init__(self) -> None:
        self._open: dict[TopicPartition, set[int]] = {}
        self._next: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}

    def fetched(self, tp: TopicPartition, offset: int) -> None:
        self._open.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def ended(self, tp: TopicPartition, offset: int) -> None:
        """A run ended; ignored for a partition this worker no longer owns (see `keep`)."""
        if tp in self._open:
            self._open[tp].discard(offset)

    def keep(self, assignment: frozenset[TopicPartition]) -> None:
        """Forget partitions a rebalance took away: their runs go on, their offsets are the new owner's."""
        for tp in set(self._next) - assignment:
            self._open.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    def to_commit(self) -> dict[TopicPartition, int]:
        """The offsets that moved since the last `committed`."""
        offsets = {tp: min(self._open[tp], default=end) for tp, end in self._next.items()}
        return {tp: offset for tp, offset in offsets.items() if self._committed.get(tp) != offset}

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)
