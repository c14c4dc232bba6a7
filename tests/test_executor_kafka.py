"""Runs through the real Kafka broker: API → spanline.executions → a `spanline executor` process →
spanline.events, with the events read back from the topic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import httpx
import pytest

from spanline.api.app import create_app
from spanline.bus.kafka import KafkaBus
from spanline.core.config import Settings
from spanline.events.codec import decode_event
from spanline.events.lineage import root_execution_id
from spanline.events.models import TERMINAL_NODE_EVENT_NAMES, TERMINAL_WORKFLOW_EVENT_NAMES, Event, event_name
from spanline.executor.examples import load_examples
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.kafka.broker import KafkaBroker
from tests.live_server import serve


@pytest.fixture
def kafka_settings(settings: Settings, kafka_broker: KafkaBroker) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "executor_group": f"executor-{suffix}",
            "topic_partitions": 3,
            "local_provider_latency_ms": 50,
            "execute_stored_wait_s": 0,  # no consumer stores these runs
        }
    )


@pytest.fixture
def executor_process(kafka_settings: Settings, tmp_path: object) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "SPANLINE_KAFKA_BOOTSTRAP": str(kafka_settings.kafka_bootstrap),
        "SPANLINE_EVENTS_TOPIC": kafka_settings.events_topic,
        "SPANLINE_EXECUTIONS_TOPIC": kafka_settings.executions_topic,
        "SPANLINE_EXECUTOR_GROUP": kafka_settings.executor_group,
        "SPANLINE_TOPIC_PARTITIONS": "3",
        "SPANLINE_LOCAL_PROVIDER_LATENCY_MS": "50",
    }
    process = subprocess.Popen([sys.executable, "-m", "spanline.cli", "executor"], env=env)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture
async def api(kafka_settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    key = (await create_api_key(store, "acme")).key
    await load_examples(store, "acme")
    bus = KafkaBus(str(kafka_settings.kafka_bootstrap))
    async with (
        serve(create_app(kafka_settings, store=store, bus=bus)) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=90) as client,
    ):
        yield client


async def read_runs(settings: Settings, execution_ids: set[UUID]) -> dict[UUID, list[Event]]:
    """Read spanline.events from the beginning until every execution has its terminal event."""
    reader = KafkaBus(str(settings.kafka_bootstrap)).consumer([settings.events_topic], group_id=None)
    await reader.start()
    runs: dict[UUID, list[Event]] = {execution_id: [] for execution_id in execution_ids}
    ended: set[UUID] = set()
    try:
        for _ in range(600):  # 600 polls of at most 200 ms: a 2-minute bound
            for message in await reader.getmany(max_records=1000, timeout_ms=200):
                event = decode_event(message.value)
                root = root_execution_id(event)
                assert root is not None and message.key == str(root).encode()
                runs.setdefault(root, []).append(event)
                if event.span_id == root and event_name(event) in TERMINAL_WORKFLOW_EVENT_NAMES:
                    ended.add(root)
            if ended >= execution_ids:
                return runs
    finally:
        await reader.stop()
    raise AssertionError(f"runs without a terminal event: {execution_ids - ended}")


async def test_runs_flow_through_kafka_and_an_executor_process(
    api: httpx.AsyncClient, kafka_settings: Settings, executor_process: subprocess.Popen[bytes]
) -> None:
    requests = {
        "research": [{"name": "question", "value": "why keys?"}],
        "summarize": [{"name": "text", "value": "partitions keep order"}],
        "failing": [{"name": "topic", "value": "short"}],
    }
    started: dict[str, UUID] = {}
    for workflow, inputs in requests.items():
        response = await api.post(
            "/v1/execute-workflow-async", json={"workflow_deployment_name": workflow, "inputs": inputs}
        )
        assert response.status_code == 200, response.text
        started[workflow] = UUID(response.json()["execution_id"])

    runs = await read_runs(kafka_settings, set(started.values()))
    for workflow, execution_id in started.items():
        events = runs[execution_id]
        expected_end = "workflow.execution.rejected" if workflow == "failing" else "workflow.execution.fulfilled"
        top = [event_name(e) for e in events if e.span_id == execution_id]
        assert top[0] == "workflow.execution.initiated" and top[-1] == expected_end
        spans: dict[UUID, list[str]] = {}
        for event in events:
            spans.setdefault(event.span_id, []).append(event_name(event))
        for names in spans.values():
            assert sum(n.endswith(".initiated") for n in names) == 1
            assert sum(n in TERMINAL_WORKFLOW_EVENT_NAMES | TERMINAL_NODE_EVENT_NAMES for n in names) == 1

    # the synchronous endpoint follows the run through the API's live feed on Kafka
    answer = await api.post(
        "/v1/execute-workflow",
        json={"workflow_deployment_name": "summarize", "inputs": [{"name": "text", "value": "hello kafka"}]},
    )
    assert answer.json()["data"]["state"] == "FULFILLED"

    executor_process.send_signal(signal.SIGTERM)
    assert executor_process.wait(timeout=30) == 0
