"""Crash safety on the real broker: a `spanline consumer` process is SIGKILLed at random moments while
50,000+ events flow (some produced twice), restarted each time, and the store ends exactly right."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from spanline.bus.interface import ORG_HEADER
from spanline.bus.kafka import KafkaBus
from tests.conftest import PROJECT_ROOT
from tests.consumer_events import Execution, expected_totals, generate_execution, normalise_totals
from tests.kafka.broker import KafkaBroker

PARTITIONS = 4
MIN_EVENTS = 50_000
KILLS = 6
# Long enough that all kills (each ~8 s apart: 6 s session timeout + start-up) land while events flow.
PRODUCE_SECONDS = 55.0


def generate(rng: random.Random) -> list[Execution]:
    executions: list[Execution] = []
    count = 0
    while count < MIN_EVENTS:
        execution = generate_execution(rng, org=rng.choice([None, "acme", "globex"]))
        executions.append(execution)
        count += len(execution.events)
    return executions


async def produce_paced(bootstrap: str, topic: str, executions: list[Execution], rng: random.Random) -> int:
    """Send every event (about 1% twice, as a retrying emitter would) spread over PRODUCE_SECONDS."""
    bus = KafkaBus(bootstrap, linger_ms=5)
    producer = bus.producer()
    await producer.start()
    messages = []
    for execution in executions:
        headers = ((ORG_HEADER, execution.org.encode()),) if execution.org else ()
        for payload in execution.payloads():
            messages.append((execution.execution_id.encode(), payload, headers))
    messages += [rng.choice(messages) for _ in range(len(messages) // 100)]
    chunk = 1_000
    pause = PRODUCE_SECONDS / (len(messages) / chunk)
    for start in range(0, len(messages), chunk):
        for key, payload, headers in messages[start : start + chunk]:
            await producer.send(topic, payload, key=key, headers=headers)
        await producer.flush()
        await asyncio.sleep(pause)  # pacing the producer, not synchronisation
    await producer.stop()
    return len(messages)


async def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:  # the group coordinator is still being set up: nothing committed yet
        return {}
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([KafkaTopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in ends.items()}


@pytest.mark.kafka
async def test_sigkilled_consumer_ends_with_exact_totals(
    kafka_broker: KafkaBroker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rng = random.Random(20261102)
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"crash-events-{suffix}", f"crash-group-{suffix}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "services"), str(PROJECT_ROOT)]),
        "SPANLINE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "SPANLINE_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'chdb'}",  # this process never opens it
        "SPANLINE_EVENTS_TOPIC": topic,
        "SPANLINE_DLQ_TOPIC": f"crash-dlq-{suffix}",
        "SPANLINE_EXECUTIONS_TOPIC": f"crash-exec-{suffix}",
        "SPANLINE_CONSUMER_GROUP": group,
        "SPANLINE_TOPIC_PARTITIONS": str(PARTITIONS),
        "SPANLINE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "SPANLINE_CONSUMER_MAX_RECORDS": "5000",
        "SPANLINE_CONSUMER_LOG_INTERVAL_S": "2",
    }
    log_path = tmp_path / "consumer.log"
    log_file = log_path.open("ab")

    def start_consumer() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "spanline.cli", "consumer"], env=env, stdout=log_file, stderr=log_file
        )
        request.addfinalizer(lambda: process.poll() is None and process.kill())  # type: ignore[func-returns-value]
        return process

    await KafkaBus(kafka_broker.bootstrap).create_topics([topic], PARTITIONS)
    executions = generate(rng)
    producing = asyncio.create_task(produce_paced(kafka_broker.bootstrap, topic, executions, rng))
    request.addfinalizer(producing.cancel)

    kills = 0
    progress_marks: list[int] = []
    last_committed = 0
    deadline = time.monotonic() + PRODUCE_SECONDS + 60
    while kills < KILLS:
        process = start_consumer()
        # Kill only once this incarnation has committed something new, at a random moment after that.
        while sum((await committed_offsets(kafka_broker.bootstrap, group)).values()) <= last_committed:
            assert not producing.done(), "production ended before the kills; make PRODUCE_SECONDS longer"
            assert process.poll() is None, f"the consumer died on its own; see {log_path}"
            assert time.monotonic() < deadline, f"no progress; see {log_path}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        kills += 1
        last_committed = sum((await committed_offsets(kafka_broker.bootstrap, group)).values())
        progress_marks.append(last_committed)

    produced = await producing
    assert produced >= MIN_EVENTS
    ends = await end_offsets(kafka_broker.bootstrap, topic)
    assert sum(ends.values()) == produced
    assert progress_marks[0] < produced, "the kills all came after everything was consumed"

    final = start_consumer()
    while await committed_offsets(kafka_broker.bootstrap, group) != ends:
        assert final.poll() is None, f"the consumer died on its own; see {log_path}"
        assert time.monotonic() < deadline + 60, f"the consumer did not catch up; see {log_path}"
        await asyncio.sleep(0.2)
    final.send_signal(signal.SIGTERM)
    assert final.wait(timeout=30) == 0, f"unclean exit on SIGTERM; see {log_path}"
    log_file.close()

    readout = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "spanline.cli", "totals"],
        env=env,
        capture_output=True,
        check=True,
        timeout=120,
    )
    totals = json.loads(readout.stdout.decode().strip().splitlines()[-1])
    assert normalise_totals(totals) == normalise_totals(expected_totals(executions))
