"""Arcee runs, run and steps, and Interactly's workflow run, against what the generated events say:
order and paging, statuses, times, inputs/outputs/errors, step tokens, token and latency stats by model
and provider (subworkflow calls included); other organizations get 404, no key 401."""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pytest

from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.rows import build_rows
from spanline.consumer.writer import EventBatchWriter
from spanline.core.config import Settings
from spanline.events.models import NodeExecutionFulfilledEvent
from spanline.executor.providers.local import LocalProvider
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import api_client, calls_of, generate_executions, ingest, org_of, parse_ts, spans_of
from tests.conftest import PROJECT_ROOT
from tests.consumer_events import Execution
from tests.executor_runtime import executor_runtime
from tests.refusals import assert_refused_naming

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ARCEE = {"FULFILLED": "completed", "REJECTED": "failed"}
BASE = "/api/v1/workflow/workflows"


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def root_workflow(execution: Execution) -> dict[str, Any]:
    return dict(execution.events[0]["body"]["workflow_definition"])


def expected_run(execution: Execution) -> dict[str, Any]:
    """Arcee's run as the events say; a run without its terminal event is running."""
    root = spans_of(execution)[execution.execution_id]
    terminal = root[-1] if root[-1]["name"] != "workflow.execution.initiated" else None
    start = parse_ts(root[0]["timestamp"])
    end = parse_ts(terminal["timestamp"]) if terminal else None
    status = terminal["name"].rsplit(".", 1)[1] if terminal else "running"
    return {
        "id": execution.execution_id,
        "status": {"fulfilled": "completed", "rejected": "failed"}.get(status, status),
        "start_time": start,
        "end_time": end,
        "elapsed_time": int((end - start).total_seconds()) if end else None,
        "error": terminal["body"]["error"]["message"] if terminal and "error" in terminal["body"] else None,
        "outputs": terminal["body"].get("outputs") if terminal else None,
        "external_id": None,  # events alone carry no label or actuals
        "metadata": None,
        "actuals": [],
        "inputs": root[0]["body"]["inputs"],
    }


def parsed_run(run: dict[str, Any]) -> dict[str, Any]:
    return {**run, "start_time": ts(run["start_time"]), "end_time": ts(run["end_time"])}


def expected_steps(execution: Execution) -> list[dict[str, Any]]:
    steps = []
    for span_id, events in spans_of(execution).items():
        if not events[0]["name"].startswith("node."):
            continue
        initiated = next(e for e in events if e["name"] == "node.execution.initiated")
        terminal = next((e for e in events if e["name"].rsplit(".", 1)[1] in ("fulfilled", "rejected")), None)
        usage = terminal["body"].get("usage_result") if terminal else None
        tokens = sum(
            call["ml_model_usage"]["input_token_count"] + call["ml_model_usage"]["output_token_count"]
            for call in (usage or {"usage": []})["usage"]
        )
        start, end = parse_ts(initiated["timestamp"]), parse_ts(terminal["timestamp"]) if terminal else None
        definition = initiated["body"]["node_definition"]
        steps.append(
            {
                "id": span_id,
                "user_id": None,
                "organization_id": org_of(execution),
                "node_id": definition["module"][-1],
                "status": ARCEE[terminal["name"].rsplit(".", 1)[1].upper()] if terminal else "running",
                "start_time": start,
                "end_time": end,
                "elapsed_time": int((end - start).total_seconds()) if end else None,
                "error": terminal["body"]["error"]["message"] if terminal and "error" in terminal["body"] else None,
                "outputs": terminal["body"].get("outputs") if terminal else None,
                "inputs": initiated["body"]["inputs"],
                "tokens": tokens,
                "parent_span_id": initiated["parent"]["span_id"],
                "model_calls": len((usage or {"usage": []})["usage"]),
            }
        )
    return sorted(steps, key=lambda step: (step["start_time"], uuid.UUID(step["id"])))


async def _setup(store: Store, seed: int) -> tuple[list[Execution], dict[str, str]]:
    rng = random.Random(seed)
    executions = generate_executions(rng, 24, orgs=["acme", "globex"], start=START, days=2)
    # One run still going: its root's terminal event (the last one) has not arrived.
    executions[0].events.pop()
    executions[0].status = "INITIATED"
    executions[0].org = "acme"
    await ingest(store, executions)
    return executions, {org: (await create_api_key(store, org)).key for org in ("acme", "globex")}


async def _store_workflow(store: Store, org: str, workflow_id: str, name: str) -> None:
    await store.insert(
        "workflows",
        [[org, uuid.UUID(workflow_id), name, 1, "", "{}", datetime.now(UTC)]],
        ["org", "workflow_id", "name", "version", "description", "definition", "created_at"],
    )


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize("seed", [5, 6])
async def test_arcee_runs_run_and_steps_follow_the_events(settings: Settings, store: Store, seed: int) -> None:
    executions, keys = await _setup(store, seed)
    acme = [e for e in executions if org_of(e) == "acme"]
    by_workflow: dict[str, list[Execution]] = defaultdict(list)
    for execution in acme:
        by_workflow[root_workflow(execution)["id"]].append(execution)
    stored_id, stored_runs = max(by_workflow.items(), key=lambda item: len(item[1]))
    assert len(stored_runs) >= 3
    # One workflow stored under another name; the others are known only from their runs' events.
    await _store_workflow(store, "acme", stored_id, "stored-name")
    any_tokens = False
    async with api_client(settings, store) as client:
        for workflow_id, runs in by_workflow.items():
            expected = sorted(runs, key=lambda e: (parse_ts(e.events[0]["timestamp"]), uuid.UUID(e.execution_id)))
            expected = [expected_run(e) for e in reversed(expected)]
            name = "stored-name" if workflow_id == stored_id else root_workflow(runs[0])["name"]
            for ref in (workflow_id, name):
                listed = await client.get(f"{BASE}/{ref}/runs", headers=_auth(keys["acme"]))
                assert listed.status_code == 200, listed.text
                assert [parsed_run(run) for run in listed.json()] == expected
            pages = []
            for offset in range(0, len(expected) + 2, 2):
                page = await client.get(
                    f"{BASE}/{workflow_id}/runs", params={"limit": 2, "offset": offset}, headers=_auth(keys["acme"])
                )
                pages.extend(parsed_run(run) for run in page.json())
            assert pages == expected
            for execution in runs:
                run_url = f"{BASE}/{name}/runs/{execution.execution_id}"
                one = await client.get(run_url, headers=_auth(keys["acme"]))
                assert parsed_run(one.json()) == expected_run(execution)
                steps = (await client.get(f"{run_url}/steps", headers=_auth(keys["acme"]))).json()
                want = expected_steps(execution)
                got = [
                    {
                        **{k: v for k, v in step.items() if k != "step_metadata"},
                        "start_time": ts(step["start_time"]),
                        "end_time": ts(step["end_time"]),
                        "parent_span_id": step["step_metadata"]["parent_span_id"],
                        "model_calls": step["step_metadata"]["model_calls"],
                    }
                    for step in steps
                ]
                assert got == want
                any_tokens = any_tokens or any(step["tokens"] > 0 for step in steps)
        assert any_tokens
        running = executions[0]
        run = await client.get(
            f"{BASE}/{root_workflow(running)['id']}/runs/{running.execution_id}", headers=_auth(keys["acme"])
        )
        assert run.json()["status"] == "running" and run.json()["end_time"] is None


async def test_arcee_refuses_unknown_and_other_organizations_runs(settings: Settings, store: Store) -> None:
    executions, keys = await _setup(store, 8)
    acme_run = next(e for e in executions if org_of(e) == "acme")
    workflow = root_workflow(acme_run)
    other_workflow = next(
        root_workflow(e) for e in executions if root_workflow(e)["id"] != workflow["id"] and org_of(e) == "acme"
    )
    await _store_workflow(store, "acme", str(uuid.uuid4()), "acme-only")
    acme, globex = _auth(keys["acme"]), _auth(keys["globex"])
    async with api_client(settings, store) as client:
        run_url = f"{BASE}/{workflow['id']}/runs/{acme_run.execution_id}"
        assert (await client.get(run_url, headers=acme)).status_code == 200
        assert (await client.get(f"{BASE}/acme-only/runs", headers=acme)).json() == []
        not_found = [
            (f"{BASE}/acme-only/runs", globex),
            (f"{BASE}/no-such-workflow/runs", acme),
            (f"{BASE}/{uuid.uuid4()}/runs", acme),
            (run_url, globex),
            (f"{run_url}/steps", globex),
            (f"{BASE}/{workflow['id']}/runs/{uuid.uuid4()}", acme),
            (f"{BASE}/{workflow['id']}/runs/not-a-uuid/steps", acme),
            (f"{BASE}/{other_workflow['id']}/runs/{acme_run.execution_id}", acme),  # a run of another workflow
        ]
        for url, headers in not_found:
            response = await client.get(url, headers=headers)
            assert response.status_code == 404, url
            assert isinstance(response.json()["detail"], str)
        for url in (f"{BASE}/{workflow['id']}/runs", run_url, f"{run_url}/steps"):
            assert (await client.get(url)).status_code == 401
        for params in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
            bad = await client.get(f"{BASE}/{workflow['id']}/runs", params=params, headers=acme)
            assert_refused_naming(bad, *params)


def expected_stats(execution: Execution) -> tuple[dict[str, Any], dict[str, Any]]:
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for call in calls_of([execution]):
        groups[(call.model, call.provider)].append(call)
    tokens = [
        {
            "response_model": model,
            "provider": provider,
            "total_input_tokens": sum(c.input_tokens for c in calls),
            "total_output_tokens": sum(c.output_tokens for c in calls),
            "total_tokens": sum(c.input_tokens + c.output_tokens for c in calls),
            "call_count_with_user_keys": 0,
            "call_count_with_fallback_keys": 0,
            "call_count": len(calls),
        }
        for (model, provider), calls in sorted(groups.items())
    ]
    latency = [
        {
            "response_model": model,
            "provider": provider,
            "call_count": len(calls),
            "total_latency_milliseconds": pytest.approx(sum(c.compute_nanos for c in calls) / 1e6),
            "average_latency_milliseconds": pytest.approx(sum(c.compute_nanos for c in calls) / 1e6 / len(calls)),
        }
        for (model, provider), calls in sorted(groups.items())
    ]
    calls = sum(len(group) for group in groups.values())
    total_ms = sum(c.compute_nanos for group in groups.values() for c in group) / 1e6
    token_usage = {
        "total_input_tokens": sum(t["total_input_tokens"] for t in tokens),
        "total_output_tokens": sum(t["total_output_tokens"] for t in tokens),
        "total_tokens": sum(t["total_tokens"] for t in tokens),
        "call_count_with_user_keys": 0,
        "call_count_with_fallback_keys": 0,
        "call_count": calls,
        "breakdown_by_models": tokens,
    }
    latency_stats = {
        "call_count": calls,
        "total_latency_milliseconds": pytest.approx(total_ms),
        "average_latency_milliseconds": pytest.approx(total_ms / calls if calls else 0.0),
        "breakdown_by_models": latency,
    }
    return token_usage, latency_stats


def has_subworkflow_call(execution: Execution) -> bool:
    for event in execution.events:
        if event["body"].get("usage_result") and event["parent"]["parent"] is not None:
            return True
    return False


async def test_interactly_run_stats_equal_the_runs_model_calls(settings: Settings, store: Store) -> None:
    executions, keys = await _setup(store, 9)
    assert any(has_subworkflow_call(e) for e in executions)
    async with api_client(settings, store) as client:
        for execution in executions:
            org = org_of(execution)
            url = f"/workflows/v1/workflow-runs/{execution.execution_id}"
            response = await client.get(url, headers=_auth(keys[org]))
            assert response.status_code == 200, response.text
            document = response.json()["workflow_run"]
            run = document["workflow_run"]
            token_usage, latency_stats = expected_stats(execution)
            assert run["llm_token_usage"] == token_usage
            assert run["llm_latency_stats"] == latency_stats
            assert run["workflow_run_id"] == execution.execution_id
            assert run["workflow_id"] == root_workflow(execution)["id"]
            expected = {"FULFILLED": "completed", "REJECTED": "failed", "INITIATED": "in_progress"}
            assert run["status"] == expected[execution.status]
            assert run["logical_id"] == document["_id"] == execution.execution_id
            assert document["team_id"] == org
            assert ts(document["created_at"]) == parse_ts(execution.events[0]["timestamp"])
            assert ts(document["updated_at"]) == max(parse_ts(e["timestamp"]) for e in execution.events)
            other = "globex" if org == "acme" else "acme"
            assert (await client.get(url, headers=_auth(keys[other]))).status_code == 404
            assert (await client.get(url)).status_code == 401
        for bad in ("5eb7cf5a86d9755df3a6c593", str(uuid.uuid4())):
            response = await client.get(f"/workflows/v1/workflow-runs/{bad}", headers=_auth(keys["acme"]))
            assert response.status_code == 404
            assert isinstance(response.json()["detail"], str)


async def test_interactly_run_without_model_calls_has_zero_stats(settings: Settings, store: Store) -> None:
    rng = random.Random(3)
    execution = next(
        e for e in (generate_executions(rng, 1, orgs=["acme"], start=START, days=1)[0] for _ in range(200))
        if not calls_of([e])
    )  # fmt: skip
    await ingest(store, [execution])
    key = (await create_api_key(store, "acme")).key
    async with api_client(settings, store) as client:
        response = await client.get(f"/workflows/v1/workflow-runs/{execution.execution_id}", headers=_auth(key))
        run = response.json()["workflow_run"]["workflow_run"]
        assert run["llm_token_usage"] == {
            "total_input_tokens": 0,
            "total_output_tokens": 0,
            "total_tokens": 0,
            "call_count_with_user_keys": 0,
            "call_count_with_fallback_keys": 0,
            "call_count": 0,
            "breakdown_by_models": [],
        }
        assert run["llm_latency_stats"] == {
            "call_count": 0,
            "total_latency_milliseconds": 0.0,
            "average_latency_milliseconds": 0.0,
            "breakdown_by_models": [],
        }


async def test_a_run_of_the_executor_reads_back_through_arcee_and_interactly(settings: Settings, store: Store) -> None:
    """End to end on spanline's own events: the research workflow (model nodes, a subworkflow with a model
    call) run by the executor, its events written by the consumer's writer, read by workflow name."""
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}) as runtime:
        response = await runtime.client.post(
            "/v1/execute-workflow",
            json={
                "workflow_deployment_name": "research",
                "inputs": [{"name": "question", "type": "STRING", "value": "why keys?"}],
            },
        )
        assert response.status_code == 200, response.text
        execution_id = response.json()["execution_id"]
        raw_and_events = await runtime.events_of(uuid.UUID(execution_id))
        events = [event for _, event in raw_and_events]
        messages = [
            BusMessage("spanline.events", 0, offset, execution_id.encode(), raw, ((ORG_HEADER, b"acme"),), 0)
            for offset, (raw, _) in enumerate(raw_and_events)
        ]
        decoded = [decode_message(m, default_org="default", max_bytes=1 << 20) for m in messages]
        await EventBatchWriter(store).write(build_rows(d for d in decoded if isinstance(d, AcceptedEvent)))
        base = f"{BASE}/research/runs/{execution_id}"
        run = (await runtime.client.get(base)).json()
        assert run["status"] == "completed" and run["id"] == execution_id
        steps = (await runtime.client.get(f"{base}/steps")).json()
        definition = json.loads((PROJECT_ROOT / "examples" / "workflows" / "research.json").read_text())
        node_ids = {node["id"] for node in definition["nodes"]}
        top_level = [s for s in steps if s["step_metadata"]["parent_span_id"] == execution_id]
        assert {s["node_id"] for s in top_level} <= node_ids
        expected_tokens: dict[str, int] = defaultdict(int)
        calls = 0
        for event in events:
            if isinstance(event, NodeExecutionFulfilledEvent) and event.body.usage_result:
                for call in event.body.usage_result.usage:
                    counts = call.ml_model_usage
                    expected_tokens[str(event.span_id)] += (counts.input_token_count or 0) + (
                        counts.output_token_count or 0
                    )
                    calls += 1
        assert {s["id"]: s["tokens"] for s in steps if s["tokens"]} == dict(expected_tokens)
        assert {s["node_id"] for s in top_level if s["tokens"]} == {"plan", "answer"}
        assert all(s["status"] == "completed" for s in steps)
        stats = (await runtime.client.get(f"/workflows/v1/workflow-runs/{execution_id}")).json()
        stats = stats["workflow_run"]["workflow_run"]
        assert stats["status"] == "completed"
        assert stats["llm_token_usage"]["total_tokens"] == sum(expected_tokens.values())
        assert stats["llm_token_usage"]["call_count"] == calls >= 3  # plan, answer and the subworkflow's model
