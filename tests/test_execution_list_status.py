"""Execution status (PENDING → stored states) and the newest-first execution list with a keyset cursor,
on real runs through executor, consumer and API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest

from spanline.consumer.service import run_consumer
from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.executor_runtime import Runtime, executor_runtime
from tests.refusals import assert_refused_naming


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}, with_consumer=True) as running:
        yield running


async def run(runtime: Runtime, workflow: str, **inputs: str) -> UUID:
    answer = await runtime.client.post(
        "/v1/execute-workflow",
        json={"workflow_deployment_name": workflow, "inputs": [{"name": k, "value": v} for k, v in inputs.items()]},
    )
    assert answer.status_code == 200, answer.text
    return UUID(answer.json()["execution_id"])


async def status_when_stored(runtime: Runtime, execution_id: UUID, wanted: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = (await runtime.client.get(f"/v1/workflows/executions/{execution_id}/status")).json()
        if status["status"] == wanted:
            return status  # type: ignore[no-any-return]
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.02)  # poll until the consumer has stored the run's end


async def test_status_follows_a_run_from_pending_to_its_end(runtime: Runtime) -> None:
    started = await runtime.client.post(
        "/v1/execute-workflow-async",
        json={"workflow_deployment_name": "summarize", "inputs": [{"name": "text", "value": "hello"}]},
    )
    execution_id = UUID(started.json()["execution_id"])
    first = (await runtime.client.get(f"/v1/workflows/executions/{execution_id}/status")).json()
    assert first["status"] in ("PENDING", "INITIATED", "STREAMING", "FULFILLED")
    done = await status_when_stored(runtime, execution_id, "FULFILLED")
    assert list(done["outputs"]) == ["summary"] and isinstance(done["outputs"]["summary"], str)
    assert done["execution_detail_url"].endswith(f"/v1/workflow-executions/{execution_id}/detail")
    failed_id = await run(runtime, "failing", topic="x")
    failed = await status_when_stored(runtime, failed_id, "REJECTED")
    assert failed["error"]["code"] == "NODE_EXECUTION" and failed["outputs"] is None


async def test_detail_of_a_real_run(runtime: Runtime) -> None:
    execution_id = await run(runtime, "research", question="why keys?")
    await status_when_stored(runtime, execution_id, "FULFILLED")
    detail = (await runtime.client.get(f"/v1/workflow-executions/{execution_id}/detail")).json()
    assert detail["span_id"] == str(execution_id) and detail["parent_context"] is None
    assert {output["name"] for output in detail["outputs"]} == {"answer", "plan"}
    spans = detail["spans"]
    assert spans[0]["span_id"] == str(execution_id) and spans[0]["name"] == "workflow.execution"
    assert [(s["start_ts"], s["span_id"]) for s in spans] == sorted((s["start_ts"], s["span_id"]) for s in spans)
    model_spans = [s for s in spans if s["usage_result"]]
    assert len(model_spans) == 3  # plan, the subworkflow's summary, answer
    (usage,) = detail["usage_results"]
    total_in = sum(u["ml_model_usage"]["input_token_count"] for u in usage["usage"])
    assert total_in == sum(
        call["ml_model_usage"]["input_token_count"] for s in model_spans for call in s["usage_result"]["usage"]
    )
    assert usage["cost"][0]["value"] == pytest.approx(
        sum(s["usage_result"]["cost"][0]["value"] for s in model_spans), rel=1e-9
    )
    for span in spans:
        names = [event["name"] for event in span["events"]]
        assert names[0].endswith(".initiated") and names[-1].endswith((".fulfilled", ".rejected"))


async def test_the_list_is_newest_first_filtered_and_paged_by_cursor(runtime: Runtime) -> None:
    summarized = [await run(runtime, "summarize", text=f"text {n}") for n in range(5)]
    failed = await run(runtime, "failing", topic="x")
    await status_when_stored(runtime, failed, "REJECTED")
    for execution_id in summarized:
        await status_when_stored(runtime, execution_id, "FULFILLED")

    everything = (await runtime.client.get("/v1/workflow-executions", params={"limit": 100})).json()
    listed = [UUID(item["execution_id"]) for item in everything["results"]]
    assert listed == [failed, *reversed(summarized)]
    assert everything["next_cursor"] is None

    pages: list[UUID] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "workflow_id": "summarize"}
        if cursor:
            params["cursor"] = cursor
        page = (await runtime.client.get("/v1/workflow-executions", params=params)).json()
        pages += [UUID(item["execution_id"]) for item in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == list(reversed(summarized))

    rejected = (await runtime.client.get("/v1/workflow-executions", params={"status": "REJECTED"})).json()
    assert [UUID(item["execution_id"]) for item in rejected["results"]] == [failed]
    assert_refused_naming(await runtime.client.get("/v1/workflow-executions", params={"status": "LOST"}), "status")
    assert_refused_naming(await runtime.client.get("/v1/workflow-executions", params={"cursor": "garbage"}), "cursor")
    other = (await create_api_key(runtime.store, "globex")).key
    theirs = await runtime.client.get("/v1/workflow-executions", headers={"X-API-KEY": other})
    assert theirs.json()["results"] == []


async def test_metrics_report_the_consumer_lag_from_the_bus(settings: Settings, store: Store) -> None:
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}, with_consumer=False) as runtime:
        execution_id = await run(runtime, "summarize", text="no consumer is running yet")
        produced = len(await runtime.events_of(execution_id))
        metrics = (await runtime.client.get("/metrics")).json()
        assert metrics["consumer_total_lag"] == produced and metrics["consumer"] is None

        stop = asyncio.Event()
        consumer = asyncio.create_task(run_consumer(settings, store=runtime.store, bus=runtime.bus, stop=stop))
        deadline = asyncio.get_running_loop().time() + 30
        while (await runtime.client.get("/metrics")).json()["consumer_total_lag"] != 0:
            assert asyncio.get_running_loop().time() < deadline, "the consumer never caught up"
            await asyncio.sleep(0.05)  # poll the metric until the consumer has committed everything
        stop.set()
        await consumer
