"""Ingest end to end on real Kafka and chDB, beside its two limits measured in the same run.

N realistic events (tests/consumer_events.generate_execution: nested workflows, fan-out, failures and model
usage in the executor's Vellum shapes, ~0.9 KB each) are pre-loaded into a 6-partition topic of a real
Kafka 4.x broker (tests/kafka/broker.py, on this machine), then:

1. limit_consume: a group-less aiokafka consumer (the bus's own KafkaConsumer, same fetch settings) reads the
   whole topic and does nothing else: events/s. limit_consume_orjson: the same with `orjson.loads` of every
   value (issue 15's limit: efficiency_vs_consume_orjson = pipeline / this).
2. pipeline: the consumer service (`run_consumer`: decode + validate, rows, inserts, run/rollup
   derivation, offset commits) from the first fetch until every offset is committed: events/s.
3. limit_insert: the rows of the first --sample events, already decoded and built in consumer-sized batches,
   inserted into a fresh database of the same chDB (the writer's two inserts per batch and the
   materialized views they feed, no run/rollup derivation).
   limit_writer: the same rows through the consumer's writer (inserts + derivations), the store's whole
   share of the pipeline; writer_on_full_tables: those rows once more through the writer into the
   pipeline's own database (all N events already stored; writes are idempotent), to show how the
   derivations' cost grows with what is stored.

efficiency = pipeline rate / min(limit_consume, limit_insert), as issue 6 defines it; efficiency_vs_writer
uses the writer limit instead. All three compete for the same 2 cores as the broker.

    SPANLINE_KAFKA_JARS=/work/main/.cache/kafka-jars PYTHONPATH=$PWD/services:$PWD \
        python bench/ingest.py [--events 1000000] [--batch 10000] [--sample 300000]

Writes bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from tests.consumer_events import generate_execution
from tests.kafka.broker import KafkaBroker

from bench.common import consume_all, machine, write_result
from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.bus.kafka import KafkaBus
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.readback import totals
from spanline.consumer.rows import BatchRows, build_rows
from spanline.consumer.service import tune_gc_for_batches
from spanline.consumer.writer import EventBatchWriter
from spanline.core.config import Settings
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

PARTITIONS = 6


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def preload(bus: KafkaBus, topic: str, events: int) -> tuple[int, int, float]:
    rng = random.Random(42)
    producer = bus.producer()
    await producer.start()
    produced = payload_bytes = 0
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    began = time.perf_counter()
    while produced < events:
        execution = generate_execution(rng, start=start, org=rng.choice([None, "acme", "globex"]))
        headers = ((ORG_HEADER, execution.org.encode()),) if execution.org else ()
        for payload in execution.payloads():
            await producer.send(topic, payload, key=execution.execution_id.encode(), headers=headers)
            payload_bytes += len(payload)
        produced += len(execution.events)
        if produced % 50_000 < len(execution.events):
            await producer.flush()  # bound the pending futures
    await producer.flush()
    await producer.stop()
    return produced, payload_bytes, time.perf_counter() - began


async def consume_only(
    bus: KafkaBus, topic: str, expected: int, batch: int, keep: int, *, parse: bool = False
) -> dict[str, Any]:
    """Read the whole topic (and with `parse`, `orjson.loads` every value: issue 15's limit)."""
    consumer = bus.consumer([topic], group_id=None)
    await consumer.start()
    kept: list[BusMessage] = []
    seen = 0
    cpu = cpu_seconds()
    began = time.perf_counter()
    while seen < expected:
        messages = await consumer.getmany(max_records=batch, timeout_ms=500)
        seen += len(messages)
        if parse:
            for message in messages:
                orjson.loads(message.value)
        if len(kept) < keep:
            kept += messages[: keep - len(kept)]
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds() - cpu
    await consumer.stop()
    return {
        "events": seen,
        "seconds": round(elapsed, 2),
        "events_per_s": round(seen / elapsed),
        "cpu_s_per_1k_events": round(cpu / seen * 1000, 4),
        "_kept": kept,
    }


async def warm_group_coordinator(bus: KafkaBus, topic: str) -> None:
    """The broker's first group creates __consumer_offsets (seconds); do that outside the timed run."""
    consumer = bus.consumer([topic], group_id=f"warmup-{uuid.uuid4().hex[:6]}")
    await consumer.start()
    while not await consumer.getmany(max_records=1, timeout_ms=500):
        pass
    await consumer.stop()


async def store_limits(dsn: str, schemas: Any, messages: list[BusMessage], batch: int) -> dict[str, Any]:
    built: list[BatchRows] = []
    build_began = time.perf_counter()
    for start in range(0, len(messages), batch):
        decoded = [decode_message(m, default_org="default", max_bytes=1 << 20) for m in messages[start : start + batch]]
        built.append(build_rows([item for item in decoded if isinstance(item, AcceptedEvent)]))
    build_s = time.perf_counter() - build_began
    out: dict[str, Any] = {"events": len(messages), "decode_and_build_rows_s": round(build_s, 2)}
    for name in ("limit_insert", "limit_writer", "writer_on_full_tables"):
        # the last: the same rows written again into the pipeline's database (all N events stored): every
        # write is idempotent, so this times the writer when its derivations run against full tables
        database = "pipeline" if name == "writer_on_full_tables" else f"{name}_{uuid.uuid4().hex[:6]}"
        store = Store(f"{dsn}?database={database}", threads=4)
        await store.run(lambda client: apply_migrations(client, schemas))
        writer = EventBatchWriter(store)
        began = time.perf_counter()
        for rows in built:
            if name == "limit_insert":
                await writer.write_events(rows)  # the inserts (views included), no run/rollup derivation
            else:
                await writer.write(rows)
        elapsed = time.perf_counter() - began
        store.close()
        out[name] = {"seconds": round(elapsed, 2), "events_per_s": round(len(messages) / elapsed)}
    return out


async def main(events: int, batch: int, sample: int) -> dict[str, Any]:
    facts = machine()
    tune_gc_for_batches()
    suffix = uuid.uuid4().hex[:8]
    base_dsn = f"chdb://{tempfile.mkdtemp(prefix='bench-ingest-')}"
    with KafkaBroker(heap="1g") as broker:
        settings = Settings(
            clickhouse_dsn=f"{base_dsn}?database=pipeline",
            kafka_bootstrap=broker.bootstrap,
            events_topic=f"bench-events-{suffix}",
            dlq_topic=f"bench-dlq-{suffix}",
            consumer_group=f"bench-{suffix}",
            topic_partitions=PARTITIONS,
            consumer_max_records=batch,
        )
        bus = KafkaBus(broker.bootstrap)
        await bus.create_topics([settings.events_topic, settings.dlq_topic], PARTITIONS)
        produced, payload_bytes, produce_s = await preload(bus, settings.events_topic, events)
        print(f"preloaded {produced} events in {produce_s:.1f}s", flush=True)

        consume = await consume_only(bus, settings.events_topic, produced, batch, keep=min(sample, produced))
        kept = consume.pop("_kept")
        consume_json = await consume_only(bus, settings.events_topic, produced, batch, keep=0, parse=True)
        consume_json.pop("_kept")
        print(f"consume-only {consume}", flush=True)

        await warm_group_coordinator(bus, settings.events_topic)
        store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
        await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
        cpu = cpu_seconds()
        metrics, elapsed = await consume_all(settings, store, bus, produced)
        pipeline_cpu = cpu_seconds() - cpu
        stored = await totals(store)
        store.close()
        assert stored["events"] == produced, stored
        pipeline = {
            "events": produced,
            "seconds": round(elapsed, 2),
            "events_per_s": round(produced / elapsed),
            "cpu_s_per_1k_events": round(pipeline_cpu / produced * 1000, 4),
            "rows_written": metrics.rows_written,
            "batches": metrics.batches,
            "dlq": metrics.dlq,
            "stage_seconds": {stage: round(seconds, 2) for stage, seconds in sorted(metrics.stage_seconds.items())},
        }
        print(f"pipeline {pipeline}", flush=True)
        await bus.close()

    limits = await store_limits(base_dsn, settings.schemas_dir / "clickhouse", kept, batch)
    print(f"store limits {limits}", flush=True)
    floor = min(consume["events_per_s"], limits["limit_insert"]["events_per_s"])
    efficiency = pipeline["events_per_s"] / floor
    return {
        "benchmark": "ingest",
        "machine": facts,
        "bus": "kafka (real broker, KRaft, single node on this machine, lz4, acks=all)",
        "partitions": PARTITIONS,
        "batch_max_records": batch,
        "events": produced,
        "mean_event_bytes": round(payload_bytes / produced),
        "preload": {"seconds": round(produce_s, 1), "events_per_s": round(produced / produce_s)},
        "pipeline": pipeline,
        "limit_consume": consume,
        "limit_consume_orjson": consume_json,
        "efficiency_vs_consume_orjson": round(pipeline["events_per_s"] / consume_json["events_per_s"], 3),
        "limit_store": limits,
        "efficiency": round(efficiency, 3),
        "efficiency_vs_writer": round(
            pipeline["events_per_s"] / min(consume["events_per_s"], limits["limit_writer"]["events_per_s"]), 3
        ),
        "targets": {"events_per_s": 50_000, "efficiency": 0.5, "efficiency_vs_consume_orjson": 0.5},
        "target_rate_met": pipeline["events_per_s"] >= 50_000,
        "target_efficiency_met": efficiency >= 0.5,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300_000, help="events whose prebuilt rows time the store")
    args = parser.parse_args()
    outcome = asyncio.run(main(args.events, args.batch, args.sample))
    write_result("ingest", outcome)
    print({key: outcome[key] for key in ("events", "efficiency", "efficiency_vs_writer")})
