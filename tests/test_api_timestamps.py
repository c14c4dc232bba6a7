"""SPEC §4: every timestamp the API returns is RFC 3339 UTC with `Z`, written by one formatter
(`spanline.core.times.rfc3339`). Walks the JSON of every read and execute answer about one run and checks
every value that looks like a moment."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from vellum import WorkflowExecutionActualStringRequest, WorkflowRequestStringInputRequest

from spanline.core.times import rfc3339, rfc3339_text
from tests.executor_runtime import Runtime
from tests.test_vellum_sdk_status import runtime, sdk

__all__ = ["runtime"]

LOOKS_LIKE_A_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
RFC3339_UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


def moments(value: Any, path: str = "$") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in moments(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in moments(item, f"{path}[{index}]")]
    return [(path, value)] if isinstance(value, str) and LOOKS_LIKE_A_MOMENT.match(value) else []


def test_the_formatter() -> None:
    assert rfc3339(datetime(2026, 1, 15, 9, 30, 0, 123456)) == "2026-01-15T09:30:00.123456Z"
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 1, 15, 11, 30, tzinfo=plus_two)) == "2026-01-15T09:30:00.000000Z"
    assert rfc3339_text("2026-01-15T09:30:00+00:00") == "2026-01-15T09:30:00.000000Z"


async def test_every_timestamp_is_rfc3339_utc_z(runtime: Runtime) -> None:
    client = sdk(runtime)
    http = runtime.client
    executed = await http.post(
        "/v1/execute-workflow",
        json={
            "workflow_deployment_name": "summarize",
            "inputs": [{"name": "text", "value": "hi"}],
            "external_id": "t-1",
        },
    )
    assert executed.status_code == 200, executed.text
    run = executed.json()["execution_id"]
    failed = await client.execute_workflow(
        workflow_deployment_name="failing", inputs=[WorkflowRequestStringInputRequest(name="topic", value="x")]
    )
    await client.submit_workflow_execution_actuals(
        execution_id=run, actuals=[WorkflowExecutionActualStringRequest(output_key="summary", quality=1.0)]
    )
    usage_query = {"from": "2020-01-01T00:00:00", "to": "2100-01-01T00:00:00", "granularity": "hour"}
    answers = {
        "execute": executed,
        "detail": await http.get(f"/v1/workflow-executions/{run}/detail"),
        "detail (rejected)": await http.get(f"/v1/workflow-executions/{failed.execution_id}/detail"),
        "status": await http.get(f"/v1/workflows/executions/{run}/status"),
        "list": await http.get("/v1/workflow-executions"),
        "workflows": await http.get("/api/v1/workflow/workflows"),
        "workflow": await http.get("/api/v1/workflow/workflows/summarize"),
        "skeleton": await http.get(f"/v1/workflow-executions/{run}/span-skeleton"),
        "runs": await http.get("/api/v1/workflow/workflows/summarize/runs"),
        "run": await http.get(f"/api/v1/workflow/workflows/summarize/runs/{run}"),
        "steps": await http.get(f"/api/v1/workflow/workflows/summarize/runs/{run}/steps"),
        "interactly": await http.get(f"/workflows/v1/workflow-runs/{run}"),
        "usage": await http.post("/v1/usage/query", json={**usage_query, "measures": ["calls"]}),
        "usage (actuals)": await http.post("/v1/usage/query", json={**usage_query, "measures": ["actuals"]}),
    }
    found: dict[str, list[tuple[str, str]]] = {}
    for name, response in answers.items():
        assert response.status_code == 200, (name, response.text)
        found[name] = moments(response.json())
    bad = {name: [(p, v) for p, v in values if not RFC3339_UTC_Z.match(v)] for name, values in found.items()}
    assert {name: values for name, values in bad.items() if values} == {}
    assert all(found[name] for name in answers if name != "status"), found  # each answer had moments to check
    detail_paths = {path for path, _ in found["detail"]}
    assert {"$.start", "$.end", "$.spans[0].start_ts", "$.spans[0].events[0].timestamp"} <= detail_paths
    assert "$.actuals[0].timestamp" in detail_paths
