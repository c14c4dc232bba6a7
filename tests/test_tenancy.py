"""Tenancy against a live server (executor, consumer, real uvicorn on 127.0.0.1): another organization's
ids answer exactly as unknown ids on every endpoint (status code and body, the asked ids aside); an SSE
stream on another organization's execution waits like one on an unknown id and never shows its events;
/metrics needs a key and keeps one Kafka admin client. The same execution id published under several
organizations stays separate executions: tests/test_tenancy_same_id.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from spanline.api.app import create_app
from spanline.api.routes import stream
from spanline.bus.interface import ORG_HEADER
from spanline.bus.kafka import KafkaBus
from spanline.core.config import Settings
from spanline.executor.examples import load_examples
from spanline.executor.providers.local import LocalProvider
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import api_client
from tests.conftest import EXAMPLES_DIR
from tests.executor_runtime import Runtime, executor_runtime
from tests.kafka.broker import KafkaBroker
from tests.live_server import serve

USAGE_RANGE = {"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    fast = settings.model_copy(update={"consumer_poll_ms": 50, "consumer_derive_interval_ms": 0})
    async with executor_runtime(fast, store, {"local": LocalProvider(20)}, with_consumer=True) as running:
        yield running


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # poll the condition


@dataclass(frozen=True)
class AcmeRun:
    execution_id: UUID
    workflow_id: UUID


async def a_finished_acme_run(runtime: Runtime) -> AcmeRun:
    """A summarize run of acme's, waited for until every read shows it (runs, steps and usage included)."""
    started = await runtime.client.post(
        "/v1/execute-workflow",
        json={"workflow_deployment_name": "summarize", "inputs": [{"name": "text", "value": "tenancy"}]},
    )
    assert started.status_code == 200, started.text
    execution_id = UUID(started.json()["execution_id"])
    workflows = (await runtime.client.get("/api/v1/workflow/workflows")).json()
    workflow_id = UUID(next(w["workflow_id"] for w in workflows if w["name"] == "summarize"))
    base = f"/api/v1/workflow/workflows/{workflow_id}/runs/{execution_id}"

    async def visible() -> bool:
        run = await runtime.client.get(base)
        steps = await runtime.client.get(f"{base}/steps")
        usage = await runtime.client.post(
            "/v1/usage/query", json={**USAGE_RANGE, "measures": ["calls"], "filters": {"workflow_id": str(workflow_id)}}
        )
        return (
            run.status_code == 200
            and run.json()["status"] == "completed"
            and steps.status_code == 200
            and len(steps.json()) == 2
            and usage.json()["rows"][0]["calls"] == 1
        )

    await until(visible, "acme's run in every read")
    return AcmeRun(execution_id, workflow_id)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None
    acme_reads_it: bool = False  # the same request with acme's key answers acme's data


def usage_query(workflow: UUID, **more: Any) -> dict[str, Any]:
    measures = ["calls", "input_tokens", "cost_usd", "executions"]
    return {**USAGE_RANGE, "measures": measures, "filters": {"workflow_id": str(workflow)}, **more}


def requests_for(execution: UUID, workflow: UUID, own_workflow: UUID) -> list[Request]:
    """Every read or start that takes an execution or workflow id, with these ids."""
    runs = f"/api/v1/workflow/workflows/{workflow}/runs"
    return [
        Request("GET", f"/v1/workflow-executions/{execution}/detail", acme_reads_it=True),
        Request("GET", f"/v1/workflow-executions/{execution}/detail?prev_span_id={execution}", acme_reads_it=True),
        Request("GET", f"/v1/workflows/executions/{execution}/status", acme_reads_it=True),
        Request("GET", f"/v1/workflow-executions?workflow_id={workflow}", acme_reads_it=True),
        Request("GET", f"/api/v1/workflow/workflows/{workflow}"),  # SPEC's definition read, where there is one
        Request("GET", runs, acme_reads_it=True),
        Request("GET", f"{runs}/{execution}", acme_reads_it=True),
        Request("GET", f"{runs}/{execution}/steps", acme_reads_it=True),
        # the caller's own workflow, another organization's run in it
        Request("GET", f"/api/v1/workflow/workflows/{own_workflow}/runs/{execution}"),
        Request("GET", f"/api/v1/workflow/workflows/{own_workflow}/runs/{execution}/steps"),
        Request("GET", f"/workflows/v1/workflow-runs/{execution}", acme_reads_it=True),
        Request("POST", "/v1/usage/query", usage_query(workflow), acme_reads_it=True),
        Request("POST", "/v1/usage/query", usage_query(workflow, dimensions=["model"]), acme_reads_it=True),
        Request("POST", f"/api/v1/workflow/workflows/{workflow}/execute", {"text": "not yours"}),
        Request("POST", "/v1/execute-workflow-async", {"workflow_deployment_id": str(workflow), "inputs": []}),
    ]


async def answer(client: httpx.AsyncClient, request: Request, ids: dict[UUID, str]) -> tuple[int, str]:
    """Status code and body, each asked id replaced by its role (the only thing the two may differ in)."""
    response = await client.request(request.method, request.path, json=request.body)
    text = response.text
    for asked, role in ids.items():
        text = text.replace(str(asked), role)
    return response.status_code, text


async def test_another_organizations_ids_answer_exactly_as_unknown_ids(runtime: Runtime) -> None:
    acme = await a_finished_acme_run(runtime)
    globex_key = (await create_api_key(runtime.store, "globex")).key
    own = next(w for w in await load_examples(runtime.store, "globex") if w.name == "summarize").workflow_id
    unknown_execution, unknown_workflow = uuid.uuid4(), uuid.uuid4()
    theirs = requests_for(acme.execution_id, acme.workflow_id, own)
    nobodys = requests_for(unknown_execution, unknown_workflow, own)
    their_roles = {acme.execution_id: "<execution>", acme.workflow_id: "<workflow>"}
    unknown_roles = {unknown_execution: "<execution>", unknown_workflow: "<workflow>"}
    async with httpx.AsyncClient(base_url=runtime.base_url, headers={"X-API-KEY": globex_key}) as globex:
        for their_request, unknown_request in zip(theirs, nobodys, strict=True):
            their_answer = await answer(globex, their_request, their_roles)
            assert their_answer == await answer(globex, unknown_request, unknown_roles), their_request.path
            if their_request.acme_reads_it:  # the id is real: acme reads its data there, globex cannot tell
                mine = await answer(runtime.client, their_request, their_roles)
                assert mine[0] == 200 and mine != their_answer, their_request.path
    acme_usage = await runtime.client.post("/v1/usage/query", json=usage_query(acme.workflow_id))
    assert acme_usage.json()["rows"][0]["calls"] == 1  # what globex's filter on acme's workflow did not see


@dataclass
class StreamWatch:
    """What a client of an SSE stream has seen so far."""

    status: int = 0
    content_type: str = ""
    events: list[dict[str, str]] = field(default_factory=list)
    keep_alives: int = 0
    closed: bool = False


async def watch(client: httpx.AsyncClient, url: str, seen: StreamWatch) -> None:
    current: dict[str, str] = {}
    async with client.stream("GET", url) as response:
        seen.status, seen.content_type = response.status_code, response.headers.get("content-type", "")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                seen.keep_alives += 1
            elif line == "":
                if current:
                    seen.events.append(current)
                    current = {}
            else:
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
    seen.closed = True


async def test_a_stream_on_another_organizations_execution_waits_like_one_on_an_unknown_id(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "KEEP_ALIVE_S", 0.1)  # keep-alives show the streams are open and idle
    acme = await a_finished_acme_run(runtime)
    globex_key = (await create_api_key(runtime.store, "globex")).key
    async with httpx.AsyncClient(base_url=runtime.base_url, headers={"X-API-KEY": globex_key}, timeout=60) as globex:
        theirs, unknown = StreamWatch(), StreamWatch()
        readers = [
            asyncio.create_task(watch(globex, f"/v1/workflow-executions/{acme.execution_id}/events", theirs)),
            asyncio.create_task(watch(globex, f"/v1/workflow-executions/{uuid.uuid4()}/events", unknown)),
        ]
        try:

            async def both_idle_a_while() -> bool:
                return min(theirs.keep_alives, unknown.keep_alives) >= 5 or theirs.closed or unknown.closed

            await until(both_idle_a_while, "five keep-alives on both streams")
            assert (theirs.status, theirs.content_type) == (unknown.status, unknown.content_type)
            assert theirs.status == 200 and theirs.content_type.startswith("text/event-stream")
            assert (theirs.events, theirs.closed) == (unknown.events, unknown.closed) == ([], False)

            # globex's own run under the same id: its stream shows globex's events only, then closes
            lines = (EXAMPLES_DIR / "failing.ndjson").read_text()
            payloads = [
                line.replace("5c6e4337-15ba-4bdd-9772-19d30e7a269f", str(acme.execution_id)).encode()
                for line in lines.splitlines()
            ]
            producer = runtime.bus.producer()
            for payload in payloads:
                await producer.send(
                    runtime.settings.events_topic,
                    payload,
                    key=str(acme.execution_id).encode(),
                    headers=((ORG_HEADER, b"globex"),),
                )
            await asyncio.wait_for(readers[0], 30)
            assert [orjson.loads(event["data"])["id"] for event in theirs.events] == [
                orjson.loads(payload)["id"] for payload in payloads
            ]
            assert not unknown.closed and unknown.events == []
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    mine = StreamWatch()
    await asyncio.wait_for(watch(runtime.client, f"/v1/workflow-executions/{acme.execution_id}/events", mine), 30)
    acme_ids = {orjson.loads(event["data"])["id"] for event in mine.events}
    assert mine.events[-1]["event"] == "workflow.execution.fulfilled"
    assert acme_ids.isdisjoint(orjson.loads(payload)["id"] for payload in payloads)


async def test_metrics_need_a_key_and_an_optional_operators_organization(settings: Settings, store: Store) -> None:
    acme, ops = (await create_api_key(store, "acme")).key, (await create_api_key(store, "ops")).key
    async with api_client(settings, store) as client:
        missing = await client.get("/metrics")
        assert missing.status_code == 401 and "API key" in missing.json()["detail"]
        assert (await client.get("/metrics", headers={"X-API-KEY": "sl_not-a-key"})).status_code == 401
        shown = await client.get("/metrics", headers={"X-API-KEY": acme})
        assert shown.status_code == 200 and set(shown.json()) >= {"consumer_lag", "live_subscribers"}
    restricted = settings.model_copy(update={"metrics_org": "ops"})
    async with api_client(restricted, store) as client:
        assert (await client.get("/metrics")).status_code == 401
        refused = await client.get("/metrics", headers={"X-API-KEY": acme})
        assert refused.status_code == 403 and "ops" not in refused.text
        assert (await client.get("/metrics", headers={"Authorization": f"Bearer {ops}"})).status_code == 200


async def test_metrics_keep_one_kafka_admin_client(
    settings: Settings, store: Store, kafka_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = uuid.uuid4().hex[:8]
    kafka = settings.model_copy(
        update={
            "kafka_bootstrap": kafka_broker.bootstrap,
            "events_topic": f"events-{suffix}",
            "dlq_topic": f"dlq-{suffix}",
            "executions_topic": f"executions-{suffix}",
            "topic_partitions": 2,
        }
    )
    started: list[AIOKafkaAdminClient] = []
    real_start = AIOKafkaAdminClient.start

    async def counting_start(self: AIOKafkaAdminClient) -> None:
        started.append(self)
        await real_start(self)

    monkeypatch.setattr(AIOKafkaAdminClient, "start", counting_start)
    key = (await create_api_key(store, "acme")).key
    async with (
        serve(create_app(kafka, store=store, bus=KafkaBus(kafka_broker.bootstrap))) as base_url,
        httpx.AsyncClient(base_url=base_url, headers={"X-API-KEY": key}, timeout=30) as client,
    ):
        before = len(started)  # topic creation and the live feed's start have their own
        answers = [await client.get("/metrics") for _ in range(5)]
        answers += await asyncio.gather(*(client.get("/metrics") for _ in range(5)))
        assert [answer.status_code for answer in answers] == [200] * 10
        assert len(started) - before == 1, "one admin client for every /metrics call"
        shown = answers[-1].json()
        assert shown["consumer_lag_error"] is None
        assert set(shown["consumer_lag"]) <= {f"events-{suffix}/0", f"events-{suffix}/1"}
