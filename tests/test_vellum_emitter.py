"""Vellum's own workflow runner (`vellum.workflows`) with its `VellumEmitter` posting to a live spanline
(`POST /monitoring/v1/events`, the key in X-API-KEY): three workflow shapes (sequential, parallel
branches, a failing node); the detail read back with the official SDK holds exactly the spans and events
the runner emitted, the outputs and the error code."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest
from vellum import AsyncVellum, Vellum, VellumEnvironment
from vellum.client.errors.not_found_error import NotFoundError
from vellum.client.types.workflow_execution_detail import WorkflowExecutionDetail
from vellum.workflows import BaseWorkflow
from vellum.workflows.emitters.vellum_emitter import VellumEmitter
from vellum.workflows.events.workflow import WorkflowEvent
from vellum.workflows.inputs import BaseInputs
from vellum.workflows.state.context import WorkflowContext

from spanline.core.config import Settings
from spanline.store.store import Store
from tests.intake_runtime import IntakeRuntime, intake_runtime, intake_settings
from tests.vellum_workflows import (
    FailingInputs,
    FailingWorkflow,
    ParallelInputs,
    ParallelWorkflow,
    SequentialInputs,
    SequentialWorkflow,
)


def environment(base_url: str) -> VellumEnvironment:
    return VellumEnvironment(default=base_url, predict=base_url, documents=base_url)


class RecordingEmitter(VellumEmitter):
    """The real emitter; it also keeps what it sent (as JSON) so the test can compare."""

    def __init__(self) -> None:
        super().__init__(debounce_timeout=0.05)
        self.sent: list[dict[str, Any]] = []

    def _send_events(self, events: list[WorkflowEvent]) -> None:
        super()._send_events(events)  # raises when the server refuses: the emitter logs and drops them
        self.sent.extend(event.model_dump(mode="json") for event in events)


def run_workflow(
    base_url: str, key: str, workflow_class: type[BaseWorkflow[Any, Any]], inputs: BaseInputs
) -> tuple[RecordingEmitter, Any]:
    emitter = RecordingEmitter()
    client = Vellum(api_key=key, environment=environment(base_url))
    workflow = workflow_class(context=WorkflowContext(vellum_client=client), emitters=[emitter])
    final = workflow.run(inputs=inputs)
    workflow.join()  # the emitter flushes its last batch
    return emitter, final


@pytest.fixture
async def runtime(settings: Settings, store: Store) -> AsyncIterator[IntakeRuntime]:
    async with intake_runtime(intake_settings(settings, None), store) as running:
        yield running


async def stored_detail(sdk: AsyncVellum, execution_id: str, spans: int) -> WorkflowExecutionDetail:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            detail = await sdk.workflow_executions.retrieve_workflow_execution_detail(execution_id)
        except NotFoundError:
            detail = None
        if detail is not None and len(detail.spans) == spans and detail.end is not None:
            return detail
        assert asyncio.get_running_loop().time() < deadline, detail
        await asyncio.sleep(0.05)  # poll until the consumer stored the run


@pytest.mark.parametrize(
    ("workflow_class", "inputs", "state"),
    [
        (SequentialWorkflow, SequentialInputs(topic="keys"), "fulfilled"),
        (ParallelWorkflow, ParallelInputs(topic="keys"), "fulfilled"),
        (FailingWorkflow, FailingInputs(topic="keys"), "rejected"),
    ],
    ids=["sequential", "parallel", "failing"],
)
async def test_the_runner_emits_to_spanline_and_the_sdk_reads_it_back(
    runtime: IntakeRuntime, workflow_class: type[BaseWorkflow[Any, Any]], inputs: BaseInputs, state: str
) -> None:
    emitter, final = await asyncio.to_thread(run_workflow, runtime.base_url, runtime.key, workflow_class, inputs)
    assert final.name == f"workflow.execution.{state}"
    sent = emitter.sent
    # the terminal event was posted too (not always last: the runner may snapshot state after it)
    terminal = [event for event in sent if event["name"] == final.name]
    assert len(terminal) == 1
    execution_id = str(final.span_id)
    emitted: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sent:
        emitted[event["span_id"]].append(event)
    sdk = AsyncVellum(api_key=runtime.key, environment=environment(runtime.base_url))
    detail = await stored_detail(sdk, execution_id, len(emitted))
    assert detail.span_id == execution_id
    assert {span.span_id for span in detail.spans} == set(emitted)
    for span in detail.spans:
        events = emitted[span.span_id]
        assert sorted(str(e.id) for e in span.events) == sorted(e["id"] for e in events)
        assert sorted(e.name for e in span.events) == sorted(e["name"] for e in events)
        kind = "workflow.execution" if events[0]["name"].startswith("workflow.") else "node.execution"
        assert span.name == kind
        definition = events[0]["body"].get("node_definition") or events[0]["body"]["workflow_definition"]
        assert span.attributes.label == definition["name"]
        if kind == "node.execution":
            assert span.parent_span_id == execution_id
    node_names = sorted(e["body"]["node_definition"]["name"] for e in sent if e["name"] == "node.execution.initiated")
    assert sorted(s.attributes.label for s in detail.spans if s.name == "node.execution") == node_names
    if state == "fulfilled":
        want = terminal[0]["body"]["outputs"]  # what the runner's fulfilled event carried
        assert want and {o.name: o.value for o in detail.outputs} == want
        assert detail.error is None
    else:
        assert detail.error is not None and final.body.error.code.value == detail.error.code == "INVALID_INPUTS"
        assert detail.error.message == final.body.error.message
        assert detail.outputs == []
