"""Schema-generated events, extremes included (tests/schema_strategies.py, from schemas/events/), through the
real consumer (ConsumerLoop via run_consumer, in-process bus, chDB): every event is stored faithfully or
dead-lettered with a reason, the consumer never stops, every offset is committed, and nothing else is lost
(every stored span and run is derived). Several events per example; one store and one consumer, which must
never stop, for all examples."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spanline.bus.interface import ORG_HEADER, TopicPartition
from spanline.bus.memory import MemoryBus
from spanline.bus.partitioning import partition_for_key
from spanline.consumer.dlq import ERROR_HEADER, REASON_HEADER, SOURCE_OFFSET_HEADER, SOURCE_PARTITION_HEADER
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT, fresh_database
from tests.schema_strategies import event_names, schema_events

# At least 500 examples whatever the profile asks for (more under "nightly").
EXAMPLES: Final = max(500, settings().max_examples)
REASONS: Final = {
    "not_json", "schema", "unknown_name", "too_large", "no_root", "bad_org", "too_deep", "timestamp_out_of_range",
    "count_out_of_range", "cost_out_of_range", "too_many_calls", "write_refused",
}  # fmt: skip
ORG_HEADERS: Final = (None, b"acme", b"globex", b"", b" ", b"\xff\xfe")
MAX_EVENT_BYTES: Final = 64 * 1024
PARTITIONS: Final = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Produced:
    event_id: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]


@st.composite
def produced_batches(draw: st.DrawFn) -> list[Produced]:
    roots = [str(uuid.uuid4()) for _ in range(2)]
    documents = draw(st.lists(st.sampled_from(event_names()).flatmap(schema_events), min_size=1, max_size=8))
    batch = []
    for document in documents:
        document = dict(document)
        event_id = document["id"] = str(uuid.uuid4())  # unique across examples: they share one store
        root = draw(st.sampled_from(roots))
        if document["name"].startswith("node.") and draw(st.booleans()):  # under a run, so it can be stored
            document["parent"] = {"type": "WORKFLOW", "span_id": root, "parent": None}
        elif document["name"].startswith("workflow.") and draw(st.booleans()):  # the run itself
            document["span_id"], document["parent"] = root, None
        text = json.dumps(document, ensure_ascii=draw(st.booleans()))
        value = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8
        if draw(st.integers(0, 19)) == 0:
            value = value[: draw(st.integers(0, len(value) - 1))]  # cut short: not JSON
        org = draw(st.sampled_from(ORG_HEADERS))
        headers = ((ORG_HEADER, org),) if org is not None else ()
        batch.append(Produced(event_id, root.encode(), value, headers))
    return batch


class LiveConsumer:
    """One consumer (`run_consumer`: the real ConsumerLoop, writer and DLQ) for every example of the module, on
    an event loop of its own thread; it must never stop. Examples produce to its bus and wait for its commits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = Settings(
            clickhouse_dsn=store.dsn,
            kafka_bootstrap=None,
            max_event_bytes=MAX_EVENT_BYTES,
            consumer_max_records=16,
            consumer_poll_ms=10,
            consumer_derive_interval_ms=0,
        )
        self.bus = MemoryBus(default_partitions=PARTITIONS, lossy_topics=frozenset({self.settings.dlq_topic}))
        self.metrics = ConsumerMetrics()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fuzz-consumer", daemon=True)
        self._thread.start()
        self._stop, self._task = self.run(self._start())

    async def _start(self) -> tuple[asyncio.Event, asyncio.Task[ConsumerMetrics]]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_consumer(self.settings, store=self.store, bus=self.bus, metrics=self.metrics, stop=stop)
        )
        return stop, task

    def run(self, work: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout_s)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self.run(asyncio.wait_for(asyncio.shield(self._task), 30))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def consume(self, batch: list[Produced]) -> list[tuple[int, int]]:
        """Produce the batch; return where each message landed once the consumer committed past all of it."""
        topic = self.settings.events_topic
        next_offset = list(self.bus.end_offsets(topic))
        placed = []
        producer = self.bus.producer()
        for item in batch:
            partition = partition_for_key(item.key, PARTITIONS)
            placed.append((partition, next_offset[partition]))
            next_offset[partition] += 1
            await producer.send(topic, item.value, key=item.key, headers=item.headers)
        ends = {TopicPartition(topic, p): end for p, end in enumerate(next_offset) if end}
        deadline = time.monotonic() + 30
        while any(self.bus.committed(self.settings.consumer_group).get(tp, 0) < end for tp, end in ends.items()):
            assert not self._task.done(), f"the consumer stopped: {self._task.exception()!r}"
            assert time.monotonic() < deadline, "not every offset was committed within 30 s"
            await asyncio.sleep(0.002)
        assert not self._task.done()
        return placed


@pytest.fixture(scope="module")
def consumer(clickhouse_base_dsn: str) -> Iterator[LiveConsumer]:
    with fresh_database(clickhouse_base_dsn, "fuzz") as dsn:
        store = Store(dsn, threads=4)
        asyncio.run(store.run(lambda client: apply_migrations(client, PROJECT_ROOT / "schemas" / "clickhouse")))
        live = LiveConsumer(store)
        yield live
        live.close()
        store.close()


def dead_letters(
    bus: MemoryBus, topic: str, sources: set[tuple[int, int]]
) -> dict[tuple[int, int], tuple[bytes, dict[str, bytes]]]:
    """The DLQ copies of the messages at `sources` (partition, offset): each one's bytes and headers."""
    found: dict[tuple[int, int], tuple[bytes, dict[str, bytes]]] = {}
    for partition, end in enumerate(bus.end_offsets(topic)):
        for message in bus.read(TopicPartition(topic, partition), 0, end):
            headers = dict(message.headers)
            source = (int(headers[SOURCE_PARTITION_HEADER]), int(headers[SOURCE_OFFSET_HEADER]))
            if source in sources:
                assert source not in found, f"dead-lettered twice: {source}"
                found[source] = (message.value, headers)
    return found


async def check(consumer: LiveConsumer, batch: list[Produced]) -> None:
    metrics = consumer.metrics
    handled_before = metrics.events + metrics.dlq
    placed = await consumer.consume(batch)
    dead = dead_letters(consumer.bus, consumer.settings.dlq_topic, set(placed))
    store = consumer.store
    ids = [item.event_id for item in batch]
    stored = {
        event_id: digest
        for event_id, digest in await store.query(
            "SELECT toString(event_id), lower(hex(MD5(payload))) FROM events WHERE event_id IN {ids:Array(UUID)}",
            {"ids": ids},
        )
    }
    for item, position in zip(batch, placed, strict=True):
        value, headers = dead.get(position, (item.value, None))
        assert value == item.value, "the DLQ copy is not the original bytes"
        is_stored = stored.get(item.event_id) == hashlib.md5(item.value).hexdigest()
        if headers is None:
            assert is_stored, f"neither stored nor dead-lettered: {item.value[:300]!r}"
            continue
        reason = headers[REASON_HEADER].decode()
        assert reason in REASONS, reason
        assert headers[ERROR_HEADER]
        assert not is_stored or reason == "write_refused", f"stored and dead-lettered ({reason}): {item.value[:300]!r}"
    assert metrics.events + metrics.dlq - handled_before == len(batch)
    # Nothing else lost: every stored event that sets a span's state has its span derived, and its run.
    (underived,) = await store.query(
        "SELECT countIf((org, execution_id, span_id) NOT IN (SELECT org, execution_id, span_id FROM spans)), "
        "countIf((org, execution_id) NOT IN (SELECT org, execution_id FROM executions)) "
        "FROM events WHERE event_id IN {ids:Array(UUID)} "
        "AND arrayExists(s -> endsWith(name, s), {states:Array(String)})",
        {"ids": ids, "states": [".initiated", ".resumed", ".streaming", ".paused", ".fulfilled", ".rejected"]},
    )
    assert underived == (0, 0)


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(batch=produced_batches())
def test_every_schema_generated_event_is_stored_or_dead_lettered(consumer: LiveConsumer, batch: list[Produced]) -> None:
    consumer.run(check(consumer, batch))
