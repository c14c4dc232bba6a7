"""The real `ConsumerLoop` over the in-process bus, driven by a script: the size of each batch it is handed
(0: an idle poll), and how each run ends (stopped, crashed, or drained). Every commit is recorded, so a test
can rewind the group to any point it committed and consume again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from spanline.bus.interface import BusMessage, TopicPartition
from spanline.bus.memory import MemoryBus, MemoryConsumer
from spanline.consumer.dlq import DeadLetterPublisher
from spanline.consumer.loop import ConsumerLoop, LoopOptions
from spanline.consumer.writer import EventBatchWriter
from spanline.store.store import Store

TOPIC = "spanline.events"
GROUP = "spanline-consumer"
Ending = Literal["stop", "crash", "drain"]


class Crash(Exception):
    """The consumer process dies: nothing after the last commit is derived or committed."""


@dataclass
class Run:
    sizes: list[int]  # batch sizes handed to the loop in turn; 0 is an idle poll
    ending: Ending
    derive_interval_s: float = 0.0


@dataclass
class ScriptedConsumer:
    """A group member whose batches follow `run.sizes`; then it stops the loop, crashes it, or (drain)
    hands out the rest and stops the loop once nothing is left."""

    inner: MemoryConsumer
    run: Run
    commits: list[dict[TopicPartition, int]]
    committed: Callable[[], dict[TopicPartition, int]]
    stop_loop: Callable[[], None] = lambda: None
    _next: int = field(default=0)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def getmany(self, *, max_records: int, timeout_ms: int) -> list[BusMessage]:
        if self._next < len(self.run.sizes):
            size = self.run.sizes[self._next]
            self._next += 1
            return await self.inner.getmany(max_records=size, timeout_ms=0) if size else []
        if self.run.ending == "crash":
            raise Crash
        batch = await self.inner.getmany(max_records=max_records, timeout_ms=0) if self.run.ending == "drain" else []
        if not batch:
            self.stop_loop()
        return batch

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.inner.commit(offsets)
        self.commits.append(self.committed())

    def assignment(self) -> frozenset[TopicPartition]:
        return self.inner.assignment()

    async def seek(self, offsets: Mapping[TopicPartition, int]) -> None:
        await self.inner.seek(offsets)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.inner.highwater(tp)


async def produce(bus: MemoryBus, messages: Sequence[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]]) -> None:
    producer = bus.producer()
    for key, payload, headers in messages:
        await producer.send(TOPIC, payload, key=key, headers=headers)


async def consume(
    bus: MemoryBus, store: Store, run: Run, *, default_org: str, commits: list[dict[TopicPartition, int]]
) -> bool:
    """One consumer process's life under `run`; False when it crashed."""
    inner = bus.consumer([TOPIC], group_id=GROUP)
    assert isinstance(inner, MemoryConsumer)
    consumer = ScriptedConsumer(inner, run, commits, lambda: bus.committed(GROUP))
    options = LoopOptions(default_org=default_org, max_event_bytes=1 << 20, derive_interval_s=run.derive_interval_s)
    dead_letters = DeadLetterPublisher(bus.producer(), "spanline.events.dlq")
    loop = ConsumerLoop(consumer, EventBatchWriter(store), dead_letters, options)
    consumer.stop_loop = loop.request_stop
    await consumer.start()
    try:
        await loop.run()
    except Crash:
        return False
    finally:
        await consumer.stop()
    return True


def rewind(bus: MemoryBus, partitions: int, point: Mapping[TopicPartition, int]) -> None:
    """Set the group's committed offsets back to `point` (a partition absent from it: the beginning)."""
    bus.commit(
        GROUP, {TopicPartition(TOPIC, index): point.get(TopicPartition(TOPIC, index), 0) for index in range(partitions)}
    )
