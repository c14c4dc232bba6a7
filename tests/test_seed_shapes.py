"""spanline's live answers have the seed pages' shapes (tests/data/seeds, copied from the public pages in
SPEC's seeds/): Interactly's workflow run, Arcee's execute answer and steps, Vellum's execution detail.
Runs come from the executor through the in-process bus and the consumer, read on a live uvicorn server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.executor_runtime import Runtime, executor_runtime
from tests.seed_shapes import shape_differences

SEEDS = PROJECT_ROOT / "tests" / "data" / "seeds"
ARCEE = "/api/v1/workflow/workflows"


def seed(name: str) -> Any:
    return json.loads((SEEDS / name).read_text())


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}, with_consumer=True) as running:
        yield running


async def stored(runtime: Runtime, execution_id: str, wanted: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = (await runtime.client.get(f"/v1/workflows/executions/{execution_id}/status")).json()
        if status["status"] == wanted:
            return
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.02)  # poll until the consumer has stored the run's end


async def execute(runtime: Runtime, workflow: str, inputs: dict[str, str], wanted: str) -> str:
    answer = await runtime.client.post(
        "/v1/execute-workflow",
        json={"workflow_deployment_name": workflow, "inputs": [{"name": k, "value": v} for k, v in inputs.items()]},
    )
    assert answer.status_code == 200, answer.text
    execution_id: str = answer.json()["execution_id"]
    await stored(runtime, execution_id, wanted)
    return execution_id


async def test_interactly_run_has_the_seed_shape(runtime: Runtime) -> None:
    execution_id = await execute(runtime, "research", {"question": "why keys?"}, "FULFILLED")
    response = await runtime.client.get(f"/workflows/v1/workflow-runs/{execution_id}")
    assert response.status_code == 200, response.text
    live = response.json()
    inner = "$.workflow_run.workflow_run"
    hydrated = f"{inner}.workflow_config_fully_hydrated"
    problems = shape_differences(
        seed("interactly_workflow_run.json"),
        live,
        nullable={
            "$.workflow_run.created_by", "$.workflow_run.updated_by", f"{inner}.termination_source",
            f"{inner}.run_by", f"{inner}.version_name", f"{inner}.source_workflow_run_id",
            f"{inner}.evaluation_run_info.evaluation_workflow_run_id", f"{inner}.input_output_pairs[].run_input.run_by",
            *(f"{hydrated}.workflow_config.{key}" for key in (
                "description", "category", "default_prompt_prefix", "default_prompt_suffix",
                "global_condition_evaluation_method",
            )),
            *(f"{hydrated}.workflow_config.llms_config.{key}" for key in ("logical_id", "provider", "type")),
            f"{hydrated}.workflow_config.main_response_config.prompt",
            f"{hydrated}.workflow_config.backchannel_response_config.prompt",
            f"{hydrated}.workflow_config.evaluation_config.evaluator_workflow_id",
            f"{hydrated}.workflow_config.evaluation_config.evaluator_workflow_version_number",
        },
        may_be_empty={
            f"{inner}.comments", f"{inner}.input_output_pairs[].run_output.events",
            f"{hydrated}.workflow_config.tools_config.tools", f"{hydrated}.workflow_config.mcp_servers",
            f"{hydrated}.workflow_config.nodes", f"{hydrated}.workflow_config.edges",
            f"{hydrated}.node_configs", f"{hydrated}.edge_configs",
        },
        extra={f"{inner}.actuals"},  # spanline's (docs/read_api.md)
    )  # fmt: skip
    assert problems == []
    document = live["workflow_run"]
    run = document["workflow_run"]
    # the fields that carry spanline's data (docs/read_api.md)
    assert document["_id"] == run["logical_id"] == run["workflow_run_id"] == execution_id
    assert document["team_id"] == "acme" and run["status"] == "completed"
    assert document["created_at"] is not None and document["updated_at"] >= document["created_at"]
    assert run["llm_token_usage"]["call_count"] >= 3 and run["llm_token_usage"]["breakdown_by_models"]
    assert run["llm_latency_stats"]["call_count"] == run["llm_token_usage"]["call_count"]
    pair = run["input_output_pairs"][0]
    assert pair["run_input"]["dynamic_variables"] == {"question": "why keys?"}
    assert pair["run_output"]["thread_to_node_outputs"]["main"]


async def test_interactly_failed_run_names_its_error_code(runtime: Runtime) -> None:
    execution_id = await execute(runtime, "failing", {"topic": "x"}, "REJECTED")
    run = (await runtime.client.get(f"/workflows/v1/workflow-runs/{execution_id}")).json()["workflow_run"]
    assert run["workflow_run"]["status"] == "failed"
    assert run["workflow_run"]["termination_source"] == "NODE_EXECUTION"


async def test_arcee_execute_and_steps_have_the_seed_shapes(runtime: Runtime) -> None:
    started = await runtime.client.post(f"{ARCEE}/research/execute", json={"question": "why keys?"})
    assert started.status_code == 200, started.text
    assert shape_differences(seed("arcee_execute.json"), started.json()) == []
    run_id = started.json()["run_id"]
    await stored(runtime, run_id, "FULFILLED")
    steps = await runtime.client.get(f"{ARCEE}/research/runs/{run_id}/steps")
    assert steps.status_code == 200, steps.text
    live = steps.json()
    problems = shape_differences(
        seed("arcee_steps.json"), live, nullable={"$[].user_id"}, free_form={"$[].outputs", "$[].inputs"}
    )
    assert problems == []
    assert all(step["organization_id"] == "acme" and step["user_id"] is None for step in live)
    assert sum(step["tokens"] for step in live) > 0


# What Vellum's page itself says may be null ("object or null") and an event's optional §1 fields.
VELLUM_NULLABLE = {
    "$.parent_context", "$.end", "$.error", "$.usage_results", "$.state", "$.spans[].parent_span_id",
    "$.spans[].usage_result", "$.spans[].events[].parent", "$.spans[].events[].links",
}  # fmt: skip
VELLUM_OPTIONAL = {
    "$.usage_results[].error",
    "$.spans[].events[].body.trigger",
    "$.spans[].events[].body.workflow_definition.exclude_from_monitoring",
}


@pytest.mark.parametrize(("workflow", "inputs", "state"), [
    ("research", {"question": "why keys?"}, "FULFILLED"), ("failing", {"topic": "x"}, "REJECTED")
])  # fmt: skip
async def test_vellum_detail_has_the_seed_shape(
    runtime: Runtime, workflow: str, inputs: dict[str, str], state: str
) -> None:
    execution_id = await execute(runtime, workflow, inputs, state)
    response = await runtime.client.get(f"/v1/workflow-executions/{execution_id}/detail")
    assert response.status_code == 200, response.text
    live = response.json()
    problems = shape_differences(
        seed("vellum_execution_detail.json"),
        live,
        nullable=VELLUM_NULLABLE,
        optional=VELLUM_OPTIONAL,
        extra={"$.external_id", "$.metadata", "$.actuals"},  # spanline's (docs/read_api.md)
        may_be_empty={"$.outputs"} if state == "REJECTED" else (),
    )
    assert problems == [], "\n".join(problems)
    assert live["span_id"] == execution_id
    if state == "FULFILLED":
        assert live["usage_results"] and live["outputs"] and live["error"] is None
    else:
        assert live["error"]["code"] == "NODE_EXECUTION"
