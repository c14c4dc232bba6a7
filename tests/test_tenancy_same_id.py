"""The same execution id published under three organizations, end to end through a real Kafka broker, the
consumer and a live API: acme's run, globex's different run with the same id, and initech's exact copy of
acme's events (same event ids). Each organization's detail, status, list, Arcee run and steps, Interactly
run, usage and SSE replay show its own execution, complete and correct; none collapses into another."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import orjson
import pytest

from spanline.api.app import create_app
from spanline.bus.interface import ORG_HEADER
from spanline.bus.kafka import KafkaBus
from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import calls_of
from tests.consumer_events import Execution, generate_execution
from tests.kafka.broker import KafkaBroker
from tests.live_server import serve
from tests.test_tenancy import StreamWatch, until, watch

USAGE_RANGE = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-04T00:00:00Z"}


def a_run(status: str, first_seed: int) -> Execution:
    """The first generated run from `first_seed` on that ends with `status` and has model calls."""
    for seed in range(first_seed, first_seed + 1000):
        execution = generate_execution(random.Random(seed))
        if execution.status == status and calls_of([execution]):
            return execution
    raise AssertionError(f"no generated {status} run with model calls")


def under(execution: Execution, execution_id: str, org: str) -> Execution:
    """The same events with another root execution id (the id only: every other id stays), for `org`."""
    text = orjson.dumps(execution.events).decode().replace(execution.execution_id, execution_id)
    return Execution(execution_id, org, orjson.loads(text), execution.status)


@dataclass(frozen=True)
class Expected:
    """What an organization's reads must show, worked out from the events it published."""

    status: str
    arcee_status: str
    workflow_id: str
    event_ids: list[str]
    span_ids: set[str]
    node_spans: int
    input_tokens: int
    output_tokens: int
    calls: int

    @classmethod
    def of(cls, execution: Execution) -> Expected:
        calls = calls_of([execution])
        root = execution.events[0]
        assert root["span_id"] == execution.execution_id and root["name"] == "workflow.execution.initiated"
        return cls(
            execution.status,
            {"FULFILLED": "completed", "REJECTED": "failed"}[execution.status],
            root["body"]["workflow_definition"]["id"],
            [event["id"] for event in execution.events],
            {event["span_id"] for event in execution.events},
            len({event["span_id"] for event in execution.events if event["name"].startswith("node.")}),
            sum(call.input_tokens for call in calls),
            sum(call.output_tokens for call in calls),
            len(calls),
        )


def found(document: Any, name: str) -> Any:
    """The first value under key `name`, however deep (the Interactly document nests its run)."""
    if isinstance(document, dict):
        if name in document:
            return document[name]
        documents = list(document.values())
    elif isinstance(document, list):
        documents = document
    else:
        return None
    return next((hit for item in documents if (hit := found(item, name)) is not None), None)


@pytest.fixture
def kafka_settings(settings: Settings, kafka_broker: KafkaBroker) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "consumer_group": f"consumer-{suffix}",
            "topic_partitions": 3,
            "consumer_poll_ms": 50,
            "consumer_derive_interval_ms": 0,
        }
    )


@pytest.fixture
async def api_url(kafka_settings: Settings, store: Store) -> AsyncIterator[str]:
    bus = KafkaBus(str(kafka_settings.kafka_bootstrap), linger_ms=5)
    stop = asyncio.Event()
    consumer = asyncio.create_task(run_consumer(kafka_settings, store=store, bus=bus, stop=stop))
    try:
        async with serve(create_app(kafka_settings, store=store, bus=bus)) as base_url:
            yield base_url
    finally:
        stop.set()
        await consumer


async def publish(settings: Settings, executions: list[Execution]) -> None:
    """Every execution's events on one partition (one key), interleaved across the organizations."""
    producer = KafkaBus(str(settings.kafka_bootstrap)).producer()
    await producer.start()
    try:
        for index in range(max(len(execution.events) for execution in executions)):
            for execution in executions:
                if index < len(execution.events):
                    assert execution.org is not None
                    await producer.send(
                        settings.events_topic,
                        orjson.dumps(execution.events[index]),
                        key=execution.execution_id.encode(),
                        headers=((ORG_HEADER, execution.org.encode()),),
                    )
        await producer.flush()
    finally:
        await producer.stop()


async def test_one_execution_id_under_three_organizations_stays_three_executions(
    kafka_settings: Settings, store: Store, api_url: str
) -> None:
    shared_id = str(uuid.uuid4())
    acme = under(a_run("FULFILLED", 0), shared_id, "acme")
    globex = under(a_run("REJECTED", 0), shared_id, "globex")
    initech = under(acme, shared_id, "initech")  # acme's very events, event ids and all
    assert acme.events == initech.events and Expected.of(acme) != Expected.of(globex)
    runs = {"acme": acme, "globex": globex, "initech": initech}
    keys = {org: (await create_api_key(store, org)).key for org in runs}
    await publish(kafka_settings, [acme, globex, initech])

    for org, run in runs.items():
        expected = Expected.of(run)
        async with httpx.AsyncClient(base_url=api_url, headers={"X-API-KEY": keys[org]}, timeout=30) as client:
            usage_body = {**USAGE_RANGE, "measures": ["calls", "input_tokens", "output_tokens", "executions"]}
            arcee = f"/api/v1/workflow/workflows/{expected.workflow_id}/runs"

            await until(partial(derived, client, arcee, usage_body, expected.calls), f"{org}'s run", timeout_s=60)
            await assert_reads(client, shared_id, expected, usage_body, arcee)


async def derived(client: httpx.AsyncClient, arcee: str, usage_body: dict[str, Any], calls: int) -> bool:
    """The run and its usage rollups are derived (the last things the consumer writes)."""
    runs_page = await client.get(arcee)
    usage = (await client.post("/v1/usage/query", json=usage_body)).json()["rows"][0]
    return runs_page.status_code == 200 and usage["calls"] == calls


async def assert_reads(
    client: httpx.AsyncClient, execution_id: str, expected: Expected, usage_body: dict[str, Any], arcee: str
) -> None:
    status = (await client.get(f"/v1/workflows/executions/{execution_id}/status")).json()
    assert status["status"] == expected.status

    detail = (await client.get(f"/v1/workflow-executions/{execution_id}/detail", params={"span_limit": 1000})).json()
    assert {span["span_id"] for span in detail["spans"]} == expected.span_ids
    assert sorted(event["id"] for span in detail["spans"] for event in span["events"]) == sorted(expected.event_ids)
    totals = detail["usage_results"][0]["usage"]
    assert sum(model["ml_model_usage"]["input_token_count"] for model in totals) == expected.input_tokens

    listed = (await client.get("/v1/workflow-executions")).json()["results"]
    assert [(item["execution_id"], item["status"]) for item in listed] == [(execution_id, expected.status)]
    assert (listed[0]["input_tokens"], listed[0]["output_tokens"]) == (expected.input_tokens, expected.output_tokens)

    arcee_runs = (await client.get(arcee)).json()
    assert [(run["id"], run["status"]) for run in arcee_runs] == [(execution_id, expected.arcee_status)]
    steps = (await client.get(f"{arcee}/{execution_id}/steps")).json()
    assert len(steps) == expected.node_spans
    assert sum(step["tokens"] for step in steps) == expected.input_tokens + expected.output_tokens

    interactly = (await client.get(f"/workflows/v1/workflow-runs/{execution_id}")).json()
    token_usage = found(interactly, "llm_token_usage")
    assert (token_usage["total_input_tokens"], token_usage["total_output_tokens"]) == (
        expected.input_tokens,
        expected.output_tokens,
    )
    assert token_usage["call_count"] == expected.calls

    usage = (await client.post("/v1/usage/query", json=usage_body)).json()["rows"]
    assert usage == [
        {
            "calls": expected.calls,
            "input_tokens": expected.input_tokens,
            "output_tokens": expected.output_tokens,
            "executions": 1,
        }
    ]

    replay = StreamWatch()
    await asyncio.wait_for(watch(client, f"/v1/workflow-executions/{execution_id}/events", replay), 30)
    assert [orjson.loads(event["data"])["id"] for event in replay.events] == expected.event_ids
