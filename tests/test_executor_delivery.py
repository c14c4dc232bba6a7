"""Executor delivery, one piece at a time on the in-process bus: a re-run emits the same ids; a failed
commit cancels nothing; a full worker keeps polling with its partitions paused; the publisher retries
instead of dropping and holds runs back when its queue is full; request offsets commit only ended runs."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Mapping, Sequence
from uuid import UUID

from spanline.bus.interface import BusUnavailableError, OutgoingMessage, TopicPartition
from spanline.bus.memory import MemoryBus, MemoryConsumer, MemoryProducer
from spanline.core.config import Settings
from spanline.events.codec import decode_event
from spanline.events.execution_request import encode_request
from spanline.events.models import Event, WorkflowExecutionInitiatedEvent
from spanline.executor.pricing import PriceTable
from spanline.executor.providers.local import LocalProvider
from spanline.executor.publisher import EventPublisher
from spanline.executor.request_offsets import RequestOffsets
from spanline.executor.runner import WorkflowRunner
from spanline.executor.tracing import build_tracer_provider, executor_tracer
from spanline.executor.worker import ExecutorWorker
from tests.executor_fleet import RunLog, fan_out_request, run_shape


async def run_once(execution_id: UUID, topic: str = "ids") -> list[Event]:
    events: list[Event] = []

    def sink(org: str, root: UUID, event: Event) -> None:
        events.append(event)

    provider = build_tracer_provider(sink)
    runner = WorkflowRunner(executor_tracer(provider), sink, {"local": LocalProvider(0)}, PriceTable.load())
    await runner.run(fan_out_request(execution_id, topic))
    provider.shutdown()
    return events


async def test_a_rerun_emits_exactly_the_ids_of_the_first_run() -> None:
    execution_id = uuid.uuid4()
    first, second = await run_once(execution_id), await run_once(execution_id)
    assert [(e.id, e.span_id, e.trace_id) for e in first] == [(e.id, e.span_id, e.trace_id) for e in second]
    assert len({e.id for e in first}) == len(first)  # and the ids within a run are distinct
    other = await run_once(uuid.uuid4())
    assert not {e.id for e in first} & {e.id for e in other}
    assert {e.trace_id for e in first} != {e.trace_id for e in other}


class FlakyCommitBus(MemoryBus):
    """Its group consumers refuse the first `failures` commits, as after a rebalance."""

    def __init__(self, failures: int) -> None:
        super().__init__(default_partitions=3)
        self.failures = failures
        self.polls: list[tuple[float, int, int]] = []  # (time, records asked, records returned)

    def consumer(self, topics: Sequence[str], *, group_id: str | None, from_beginning: bool = True) -> MemoryConsumer:
        bus = self

        class Consumer(MemoryConsumer):
            async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
                if group_id is not None and bus.failures > 0:
                    bus.failures -= 1
                    raise BusUnavailableError("CommitFailedError: the group rebalanced")
                await super().commit(offsets)

            async def getmany(self, *, max_records: int, timeout_ms: int) -> list:  # type: ignore[type-arg]
                batch = await super().getmany(max_records=max_records, timeout_ms=timeout_ms)
                if group_id is not None:
                    bus.polls.append((asyncio.get_running_loop().time(), max_records, len(batch)))
                return batch

        return Consumer(self, list(topics), group_id=group_id, from_beginning=from_beginning)


async def run_worker_until_done(bus: FlakyCommitBus, settings: Settings, ids: list[UUID], latency_ms: int) -> RunLog:
    producer = bus.producer()
    for execution_id in ids:
        request = fan_out_request(execution_id, "commit")
        await producer.send(settings.executions_topic, encode_request(request), key=str(execution_id).encode())
    stopping = asyncio.Event()
    worker = asyncio.create_task(ExecutorWorker(bus, settings, {"local": LocalProvider(latency_ms)}).run(stopping))
    reader = bus.consumer([settings.events_topic], group_id=None)
    await reader.start()
    log = RunLog()
    deadline = asyncio.get_running_loop().time() + 30
    while not log.ended >= set(ids):
        assert asyncio.get_running_loop().time() < deadline and not worker.done()
        await log.read(reader)
    committed_deadline = asyncio.get_running_loop().time() + 10
    while sum(bus.committed(settings.executor_group).values()) < len(ids):  # every request committed at last
        assert asyncio.get_running_loop().time() < committed_deadline
        await asyncio.sleep(0.05)
    stopping.set()
    await worker
    return log


async def test_a_failed_commit_cancels_no_run_and_is_retried(settings: Settings) -> None:
    bus = FlakyCommitBus(failures=5)
    ids = [uuid.uuid4() for _ in range(4)]
    log = await run_worker_until_done(bus, settings, ids, latency_ms=300)
    assert bus.failures == 0  # the commits did fail ...
    clean = run_shape(await run_once(uuid.uuid4(), "commit"))
    for execution_id in ids:  # ... and every run went on to its normal end
        assert run_shape(log.events[execution_id].values()) == clean


async def test_a_full_worker_keeps_polling_with_its_partitions_paused(settings: Settings) -> None:
    bus = FlakyCommitBus(failures=0)
    busy = settings.model_copy(update={"executor_concurrency": 2})
    ids = [uuid.uuid4() for _ in range(6)]
    await run_worker_until_done(bus, busy, ids, latency_ms=600)
    times = [t for t, _, _ in bus.polls]
    assert max(b - a for a, b in itertools.pairwise(times)) < 1.0  # never blocked between polls
    # polls while both slots were busy fetched nothing, though requests were waiting
    full_polls = [returned for _, asked, returned in bus.polls if asked == 1]
    assert full_polls and all(returned == 0 for returned in full_polls[:-1]) and len(full_polls) > 3


class AwayProducer(MemoryProducer):
    """Fails every send while `away` is set, as a producer does while the broker is down."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus)
        self.away = asyncio.Event()
        self.refused = 0

    async def send_acked(self, topic: str, messages: Sequence[OutgoingMessage]) -> None:
        if self.away.is_set():
            self.refused += 1
            raise BusUnavailableError("KafkaConnectionError: broker away")
        await super().send_acked(topic, messages)


def initiated(n: int) -> WorkflowExecutionInitiatedEvent:
    return decode_event(  # type: ignore[return-value]
        b'{"id":"%s","name":"workflow.execution.initiated","timestamp":"2026-01-01T00:00:00Z",'
        b'"trace_id":"%s","span_id":"%s","body":{"workflow_definition":{"id":"%s","name":"w","module":["w"]},'
        b'"inputs":{"n":%d}}}'
        % (str(uuid.uuid4()).encode(), str(uuid.uuid4()).encode(), str(uuid.uuid4()).encode(),
           str(uuid.uuid4()).encode(), n)
    )  # fmt: skip


async def test_the_publisher_retries_while_the_broker_is_away_and_holds_runs_back_when_full() -> None:
    bus = MemoryBus()
    producer = AwayProducer(bus)
    publisher = EventPublisher(producer, "events", max_queued=10)
    await publisher.start()
    producer.away.set()
    root = uuid.uuid4()  # one execution: one partition, so the order is observable
    for n in range(10):
        publisher.emit("acme", root, initiated(n))
    room = asyncio.create_task(publisher.wait_for_room())
    deadline = asyncio.get_running_loop().time() + 10
    while producer.refused < 3:  # retried, not dropped
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert not room.done() and publisher.queued == 10  # the queue is full: a run waiting for room waits
    producer.away.clear()
    await asyncio.wait_for(room, 10)
    await asyncio.wait_for(publisher.drain(), 10)
    reader = bus.consumer(["events"], group_id=None)
    await reader.start()
    sent = [decode_event(m.value) for m in await reader.getmany(max_records=100, timeout_ms=100)]
    assert [e.body.inputs["n"] for e in sent] == list(range(10))  # every event, in emission order
    await publisher.stop()


def test_request_offsets_commit_only_up_to_the_first_run_still_going() -> None:
    tp, other = TopicPartition("executions", 0), TopicPartition("executions", 1)
    offsets = RequestOffsets()
    for offset in (5, 6, 7):
        offsets.fetched(tp, offset)
    offsets.fetched(other, 0)
    offsets.ended(tp, 6)
    offsets.ended(tp, 7)
    assert offsets.to_commit() == {tp: 5, other: 0}  # 5 still runs: nothing past it
    offsets.committed({tp: 5, other: 0})
    assert offsets.to_commit() == {}
    offsets.ended(tp, 5)
    assert offsets.to_commit() == {tp: 8}
    offsets.keep(frozenset({tp}))  # a rebalance took `other` away
    offsets.ended(other, 0)
    assert other not in offsets.to_commit()
