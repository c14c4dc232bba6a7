"""The official SDK's `workflows.workflow_execution_status` against a live server: a fulfilled run's
`outputs` is the map output name → value (`CheckWorkflowExecutionStatusResponse`), a rejected run's error
carries its code, and both agree with the detail the SDK reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from vellum import AsyncVellum, VellumEnvironment, WorkflowRequestStringInputRequest
from vellum.client.types.check_workflow_execution_status_response import CheckWorkflowExecutionStatusResponse

from spanline.core.config import Settings
from spanline.executor.providers.local import LocalProvider
from spanline.store.store import Store
from tests.executor_runtime import Runtime, executor_runtime


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[Runtime]:
    async with executor_runtime(settings, store, {"local": LocalProvider(5)}, with_consumer=True) as running:
        yield running


def sdk(runtime: Runtime) -> AsyncVellum:
    url = runtime.base_url
    return AsyncVellum(api_key=runtime.key, environment=VellumEnvironment(default=url, predict=url, documents=url))


async def status_when(client: AsyncVellum, execution_id: str, wanted: str) -> CheckWorkflowExecutionStatusResponse:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = await client.workflows.workflow_execution_status(execution_id)
        if status.status == wanted:
            return status
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.02)  # poll until the consumer stored the run's end


async def test_status_outputs_are_a_map_the_sdk_parses(runtime: Runtime) -> None:
    client = sdk(runtime)
    executed = await client.execute_workflow(
        workflow_deployment_name="summarize", inputs=[WorkflowRequestStringInputRequest(name="text", value="hello")]
    )
    assert executed.data.state == "FULFILLED"
    status = await status_when(client, executed.execution_id, "FULFILLED")
    assert status.outputs == {output.name: output.value for output in executed.data.outputs}
    assert status.error is None and status.execution_id == executed.execution_id
    detail = await client.workflow_executions.retrieve_workflow_execution_detail(executed.execution_id)
    assert status.outputs == {output.name: output.value for output in detail.outputs}
    failed = await client.execute_workflow(
        workflow_deployment_name="failing", inputs=[WorkflowRequestStringInputRequest(name="topic", value="x")]
    )
    rejected = await status_when(client, failed.execution_id, "REJECTED")
    assert rejected.outputs is None
    assert rejected.error is not None and rejected.error.code == "NODE_EXECUTION"
    assert rejected.error.message == "draft is too short"
