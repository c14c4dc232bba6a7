"""An in-process bus with Kafka's semantics (partitions by key, offsets, groups, commits), for the
embedded single-process mode and for tests that need a bus but not a broker."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from spanline.bus.interface import BusMessage, Headers, OutgoingMessage, TopicPartition
from spanline.bus.partitioning import partition_for_key


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: list[MemoryConsumer] = field(default_factory=list)


class MemoryBus:
    def __init__(self, default_partitions: int = 6) -> None:
        self._default_partitions = default_partitions
        self._topics: dict[str, list[list[BusMessage]]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._member_ids = itertools.count()
        self._arrived = asyncio.Condition()

    # topics -----------------------------------------------------------------------------------

    async def create_topics(self, names: Sequence[str], partitions: int) -> None:
        for name in names:
            self._topics.setdefault(name, [[] for _ in range(partitions)])

    def _partitions_of(self, topic: str) -> list[list[BusMessage]]:
        if topic not in self._topics:  # like Kafka's auto.create.topics.enable
            self._topics[topic] = [[] for _ in range(self._default_partitions)]
        return self._topics[topic]

    def end_offsets(self, topic: str) -> list[int]:
        return [len(log) for log in self._partitions_of(topic)]

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        return dict(self._groups.get(group_id, _Group()).committed)

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        return {tp: offset for tp, offset in self.committed(group_id).items() if tp.topic == topic}

    def offset_reader(self) -> MemoryOffsetReader:
        return MemoryOffsetReader(self)

    # producing --------------------------------------------------------------------------------

    async def append(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        logs = self._partitions_of(topic)
        partition = partition_for_key(key, len(logs)) if key is not None else next(self._round_robin) % len(logs)
        log = logs[partition]
        log.append(BusMessage(topic, partition, len(log), key, value, headers, int(time.time() * 1000)))
        async with self._arrived:
            self._arrived.notify_all()

    def read(self, tp: TopicPartition, offset: int, limit: int) -> list[BusMessage]:
        return self._partitions_of(tp.topic)[tp.partition][offset : offset + limit]

    async def wait_for_messages(self, timeout_s: float) -> None:
        # asyncio.timeout, not wait_for: wait_for runs wait() in a task of its own, and a second
        # cancellation of the caller (a consumer being stopped) could leave before that task took the
        # lock back, so leaving `async with` released an unheld lock ("Lock is not acquired").
        async with self._arrived:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()

    # groups -----------------------------------------------------------------------------------

    def join(self, group_id: str, member: MemoryConsumer) -> None:
        group = self._groups.setdefault(group_id, _Group())
        group.members.append(member)
        self._rebalance(group)

    def leave(self, group_id: str, member: MemoryConsumer) -> None:
        group = self._groups[group_id]
        if member in group.members:
            group.members.remove(member)
            self._rebalance(group)

    def commit(self, group_id: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._groups[group_id].committed.update(offsets)

    def _rebalance(self, group: _Group) -> None:
        """Round-robin the group's partitions over its members; each starts at the committed offset,
        so whatever a departed member had read but not committed is read again (at-least-once)."""
        if not group.members:
            return
        topics = sorted({topic for member in group.members for topic in member.topics})
        partitions = [
            TopicPartition(topic, index) for topic in topics for index in range(len(self._partitions_of(topic)))
        ]
        shares: dict[int, dict[TopicPartition, int]] = {id(member): {} for member in group.members}
        for index, tp in enumerate(partitions):
            member = group.members[index % len(group.members)]
            shares[id(member)][tp] = group.committed.get(tp, 0)
        for member in group.members:
            member.assign(shares[id(member)])

    # the Bus protocol -------------------------------------------------------------------------

    def producer(self) -> MemoryProducer:
        return MemoryProducer(self)

    def consumer(self, topics: Sequence[str], *, group_id: str | None, from_beginning: bool = True) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group_id=group_id, from_beginning=from_beginning)

    async def ping(self, timeout_s: float = 3.0) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryOffsetReader:
    """The bus's committed offsets; nothing to connect or to close."""

    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def committed_offsets(self, group_id: str, topic: str) -> dict[TopicPartition, int]:
        return await self._bus.committed_offsets(group_id, topic)

    async def close(self) -> None:
        return None


class MemoryProducer:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()) -> None:
        await self._bus.append(topic, value, key, headers)

    async def flush(self) -> None:
        return None

    async def send_acked(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        for message in messages:
            await self._bus.append(topic, message.value, message.key, message.headers)


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, topics: list[str], *, group_id: str | None, from_beginning: bool) -> None:
        self._bus = bus
        self.topics = topics
        self._group_id = group_id
        self._from_beginning = from_beginning
        self._positions: dict[TopicPartition, int] = {}
        self._started = False

    def assign(self, positions: dict[TopicPartition, int]) -> None:
        self._positions = positions

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._group_id is not None:
            self._bus.join(self._group_id, self)
            return
        for topic in self.topics:
            for index, end in enumerate(self._bus.end_offsets(topic)):
                self._positions[TopicPartition(topic, index)] = 0 if self._from_beginning else end

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._group_id is not None:
            self._bus.leave(self._group_id, self)
        self._positions = {}

    def assignment(self) -> frozenset[TopicPartition]:
        return frozenset(self._positions)

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._positions:
                self._positions[tp] = offset

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._bus.end_offsets(tp.topic)[tp.partition]

    async def getmany(self, *, max_records: int, timeout_ms: int) -> list[BusMessage]:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            batch = self._take(max_records)
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                return batch
            await self._bus.wait_for_messages(remaining)

    def _take(self, max_records: int) -> list[BusMessage]:
        batch: list[BusMessage] = []
        for tp in sorted(self._positions, key=lambda tp: (tp.topic, tp.partition)):
            if len(batch) >= max_records:
                break
            messages = self._bus.read(tp, self._positions[tp], max_records - len(batch))
            if messages:
                self._positions[tp] = messages[-1].offset + 1
                batch.extend(messages)
        return batch

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if self._group_id is None:
            raise RuntimeError("a consumer without a group has nothing to commit to")
        self._bus.commit(self._group_id, offsets)
