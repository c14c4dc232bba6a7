"""Consumer throughput: N generated events (nested runs with model usage) through the in-process bus
(or real Kafka with --kafka BOOTSTRAP) into a fresh chDB directory, timed from the first fetch until
every offset is committed. Prints one JSON line.

    PYTHONPATH=services:. python bench/consumer_throughput.py --events 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import tempfile
import uuid
from datetime import UTC, datetime

from tests.consumer_events import generate_execution

from bench.common import consume_all
from spanline.bus.interface import ORG_HEADER, Bus
from spanline.bus.kafka import KafkaBus
from spanline.bus.memory import MemoryBus
from spanline.consumer.readback import totals
from spanline.consumer.service import tune_gc_for_batches
from spanline.core.config import Settings
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store


async def main(events: int, batch: int, kafka: str | None) -> dict[str, object]:
    tune_gc_for_batches()
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        clickhouse_dsn=f"chdb://{tempfile.mkdtemp(prefix='bench-chdb-')}",
        kafka_bootstrap=kafka,
        events_topic=f"bench-events-{suffix}",
        dlq_topic=f"bench-dlq-{suffix}",
        consumer_group=f"bench-{suffix}",
        topic_partitions=6,
        consumer_max_records=batch,
    )
    bus: Bus = KafkaBus(kafka) if kafka else MemoryBus(default_partitions=6)
    await bus.create_topics([settings.events_topic, settings.dlq_topic], 6)
    rng = random.Random(42)
    producer = bus.producer()
    await producer.start()
    produced = 0
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    while produced < events:
        execution = generate_execution(rng, start=start, org=rng.choice([None, "acme", "globex"]))
        headers = ((ORG_HEADER, execution.org.encode()),) if execution.org else ()
        for payload in execution.payloads():
            await producer.send(settings.events_topic, payload, key=execution.execution_id.encode(), headers=headers)
        produced += len(execution.events)
    await producer.flush()
    await producer.stop()

    store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
    await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
    metrics, elapsed = await consume_all(settings, store, bus, produced)
    result = await totals(store)
    store.close()
    await bus.close()
    assert result["events"] == produced, result
    return {
        "events": produced,
        "seconds": round(elapsed, 2),
        "events_per_s": round(produced / elapsed),
        "rows_written": metrics.rows_written,
        "batches": metrics.batches,
        "stage_seconds": {stage: round(seconds, 2) for stage, seconds in metrics.stage_seconds.items()},
        "batch_max_records": batch,
        "bus": "kafka" if kafka else "memory",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--kafka", default=None, help="bootstrap servers of a real broker")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.events, args.batch, args.kafka))))
