"""Runs one workflow execution: every workflow and node execution is an OpenTelemetry span (the
`VellumEventProcessor` turns their starts and ends into events); nodes whose inputs are ready run
concurrently; untaken conditional branches are skipped; subworkflows nest under their calling node.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

from opentelemetry.trace import Span, Status, StatusCode, Tracer

from spanline.events.execution_request import ExecutionRequest, WorkflowSnapshot
from spanline.events.models import (
    CodeResourceDefinition,
    ExecutionError,
    NodeExecutionLogEvent,
    NodeExecutionStreamingEvent,
    NodeLogBody,
    NodeStreamingBody,
    ParentContext,
    StreamedOutput,
    WorkflowExecutionStreamingEvent,
    WorkflowStreamingBody,
)
from spanline.events.workflow_definition import (
    FromNodeOutput,
    NodeDefinition,
    WorkflowDefinition,
    dependencies,
)
from spanline.executor import spans
from spanline.executor.errors import ExecutionFailure
from spanline.executor.graph import SKIPPED, NodeResult, is_skipped, read_binding
from spanline.executor.inputs import check_inputs
from spanline.executor.nodes.code import Severity, run_code
from spanline.executor.nodes.conditional import choose_port
from spanline.executor.nodes.model import CostModel, run_model
from spanline.executor.nodes.template import run_template
from spanline.executor.providers.base import ModelProvider
from spanline.executor.sandbox.interface import CodeSandbox
from spanline.executor.sandbox.selection import RefusingSandbox

MAX_SUBWORKFLOW_DEPTH: Final = 8


@dataclass(frozen=True, slots=True)
class WorkflowOutcome:
    outputs: dict[str, Any] | None
    error: ExecutionFailure | None


@dataclass(frozen=True, slots=True)
class _Run:
    """What every span of one top-level execution shares."""

    org: str
    root: UUID
    subworkflows: Mapping[str, WorkflowSnapshot]


class WorkflowRunner:
    def __init__(
        self,
        tracer: Tracer,
        emit: spans.EventSink,
        providers: Mapping[str, ModelProvider],
        prices: CostModel,
        code_sandbox: CodeSandbox | None = None,
    ) -> None:
        self._tracer = tracer
        self._emit = emit
        self._providers = providers
        self._prices = prices
        self._code_sandbox = code_sandbox or RefusingSandbox("code nodes are off: this runner has no sandbox")

    async def run(self, request: ExecutionRequest) -> WorkflowOutcome:
        run = _Run(request.org, request.execution_id, request.subworkflows)
        return await self._run_workflow(request.workflow, request.inputs, request.execution_id, None, run, 0)

    async def _run_workflow(
        self,
        snapshot: WorkflowSnapshot,
        inputs: Mapping[str, Any],
        span_id: UUID,
        parent: ParentContext | None,
        run: _Run,
        depth: int,
    ) -> WorkflowOutcome:
        name = str(snapshot.definition.get("name", "workflow"))
        workflow_definition = CodeResourceDefinition(id=snapshot.workflow_id, name=name, module=["workflows", name])
        attributes = self._attributes("workflow", span_id, run, parent, workflow_definition, dict(inputs))
        with self._tracer.start_as_current_span(
            f"workflow {name}", attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                definition = WorkflowDefinition.model_validate(snapshot.definition)
                resolved = check_inputs(definition, inputs)
                context = ParentContext(
                    type="WORKFLOW", span_id=span_id, workflow_definition=workflow_definition, parent=parent
                )
                async with asyncio.timeout(definition.timeout_s):
                    outputs = await self._run_graph(definition, snapshot, resolved, context, run, depth, span)
            except TimeoutError:
                return self._fail(span, ExecutionFailure("WORKFLOW_TIMEOUT", f"workflow {name!r} timed out"))
            except ExecutionFailure as failure:
                return self._fail(span, failure)
            except asyncio.CancelledError:
                self._fail(span, ExecutionFailure("WORKFLOW_CANCELLED", "the execution was cancelled"))
                raise
            except ValueError as exc:  # a stored definition that no longer validates
                return self._fail(span, ExecutionFailure("INVALID_WORKFLOW", str(exc)))
            span.set_attribute(spans.OUTPUTS, spans.to_json(outputs))
            return WorkflowOutcome(outputs, None)

    async def _run_graph(
        self,
        definition: WorkflowDefinition,
        snapshot: WorkflowSnapshot,
        inputs: dict[str, Any],
        context: ParentContext,
        run: _Run,
        depth: int,
        span: Span,
    ) -> dict[str, Any]:
        results: dict[str, NodeResult] = {}
        waiting = {node.id: node for node in definition.nodes}
        running: dict[asyncio.Task[NodeResult], str] = {}
        try:
            while waiting or running:
                self._start_ready(waiting, results, running, inputs, snapshot, context, run, depth)
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    node_id = running.pop(task)
                    results[node_id] = task.result()  # a failed node fails the workflow
                    self._stream_outputs(definition, node_id, results[node_id], context, run, span)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        return {output.name: read_binding(output.source, results, inputs) for output in definition.outputs}

    def _start_ready(
        self,
        waiting: dict[str, NodeDefinition],
        results: dict[str, NodeResult],
        running: dict[asyncio.Task[NodeResult], str],
        inputs: dict[str, Any],
        snapshot: WorkflowSnapshot,
        context: ParentContext,
        run: _Run,
        depth: int,
    ) -> None:
        progressed = True
        while progressed:  # skipping a node can make its dependents ready at once
            progressed = False
            for node_id, node in list(waiting.items()):
                if not dependencies(node) <= results.keys():
                    continue
                del waiting[node_id]
                progressed = True
                if is_skipped(node, results):
                    results[node_id] = SKIPPED
                    continue
                node_inputs = {name: read_binding(binding, results, inputs) for name, binding in node.inputs.items()}
                task = asyncio.create_task(self._run_node(node, node_inputs, snapshot, context, run, depth))
                running[task] = node_id

    async def _run_node(
        self,
        node: NodeDefinition,
        inputs: dict[str, Any],
        snapshot: WorkflowSnapshot,
        context: ParentContext,
        run: _Run,
        depth: int,
    ) -> NodeResult:
        workflow_definition = context.workflow_definition
        assert workflow_definition is not None
        span_id = uuid.uuid4()
        node_definition = CodeResourceDefinition(
            id=uuid.uuid5(snapshot.workflow_id, node.id),
            name=node.label or node.id,
            module=[*workflow_definition.module, node.id],
            exclude_from_monitoring=False,
        )
        attributes = self._attributes("node", span_id, run, context, node_definition, inputs)
        with self._tracer.start_as_current_span(
            f"node {node.id}", attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                async with asyncio.timeout(node.timeout_s):
                    result = await self._dispatch(node, inputs, span_id, node_definition, context, run, depth, span)
            except TimeoutError:
                failure = ExecutionFailure("NODE_TIMEOUT", f"node {node.id!r} exceeded its {node.timeout_s:g}s timeout")
                self._fail(span, failure)
                raise failure from None
            except ExecutionFailure as failure:
                self._fail(span, failure)
                raise
            except asyncio.CancelledError:
                self._fail(span, ExecutionFailure("NODE_CANCELLED", f"node {node.id!r} was cancelled"))
                raise
            except Exception as exc:  # a bug in a node kind still ends the span with an error
                crashed = ExecutionFailure("NODE_EXECUTION", f"{type(exc).__name__}: {exc}")
                self._fail(span, crashed)
                raise crashed from exc
            span.set_attribute(spans.OUTPUTS, spans.to_json(result.outputs))
            if result.port is not None:
                span.set_attribute(spans.INVOKED_PORTS, spans.to_json([result.port]))
            return result

    async def _dispatch(
        self,
        node: NodeDefinition,
        inputs: dict[str, Any],
        span_id: UUID,
        node_definition: CodeResourceDefinition,
        context: ParentContext,
        run: _Run,
        depth: int,
        span: Span,
    ) -> NodeResult:
        if node.kind == "template":
            return NodeResult(await run_template(node.config, inputs))
        if node.kind == "code":

            def on_log(severity: Severity, message: str) -> None:
                self._emit_node_log(span, span_id, node_definition, context, run, severity, message)

            return NodeResult(await run_code(self._code_sandbox, node.config, inputs, node.timeout_s, on_log))
        if node.kind == "conditional":
            port = choose_port(node.config, inputs)
            return NodeResult({"output": port}, port=port)
        if node.kind == "model":

            async def on_delta(delta: str) -> None:
                self._emit_node_delta(span, span_id, node_definition, context, run, delta)

            outcome = await run_model(node.config, inputs, self._providers, self._prices, on_delta)
            span.set_attribute(spans.USAGE, spans.to_json(outcome.usage_result))
            return NodeResult(outcome.outputs)
        if node.kind == "subworkflow":
            return await self._run_subworkflow(node, inputs, span_id, node_definition, context, run, depth)
        raise ExecutionFailure("INVALID_WORKFLOW", f"node {node.id!r} has unknown kind {node.kind!r}")

    async def _run_subworkflow(
        self,
        node: NodeDefinition,
        inputs: dict[str, Any],
        span_id: UUID,
        node_definition: CodeResourceDefinition,
        context: ParentContext,
        run: _Run,
        depth: int,
    ) -> NodeResult:
        name = str(node.config["workflow"])
        snapshot = run.subworkflows.get(name)
        if snapshot is None:
            raise ExecutionFailure("INVALID_WORKFLOW", f"subworkflow {name!r} is not part of this run")
        if depth >= MAX_SUBWORKFLOW_DEPTH:
            raise ExecutionFailure("NODE_EXECUTION_COUNT_LIMIT_REACHED", f"subworkflows nest deeper than {depth}")
        parent = ParentContext(type="WORKFLOW_NODE", span_id=span_id, node_definition=node_definition, parent=context)
        outcome = await self._run_workflow(snapshot, inputs, uuid.uuid4(), parent, run, depth + 1)
        if outcome.error is not None:
            raise ExecutionFailure(outcome.error.code, outcome.error.message, raw_data=outcome.error.raw_data)
        return NodeResult(outcome.outputs or {})

    # events emitted inside a span ---------------------------------------------------------------

    def _emit_node_delta(
        self,
        span: Span,
        span_id: UUID,
        node_definition: CodeResourceDefinition,
        context: ParentContext,
        run: _Run,
        delta: str,
    ) -> None:
        body = NodeStreamingBody(node_definition=node_definition, output=StreamedOutput(name="output", delta=delta))
        event = NodeExecutionStreamingEvent(**_envelope(span, span_id, context), body=body)
        self._emit(run.org, run.root, event)

    def _emit_node_log(
        self,
        span: Span,
        span_id: UUID,
        node_definition: CodeResourceDefinition,
        context: ParentContext,
        run: _Run,
        severity: Severity,
        message: str,
    ) -> None:
        body = NodeLogBody(node_definition=node_definition, message=message, severity=severity)
        self._emit(run.org, run.root, NodeExecutionLogEvent(**_envelope(span, span_id, context), body=body))

    def _stream_outputs(
        self,
        definition: WorkflowDefinition,
        node_id: str,
        result: NodeResult,
        context: ParentContext,
        run: _Run,
        span: Span,
    ) -> None:
        """Each workflow output is streamed as soon as the node it comes from has finished."""
        assert context.workflow_definition is not None
        for output in definition.outputs:
            if isinstance(output.source, FromNodeOutput) and output.source.node == node_id:
                value = result.outputs.get(output.source.output)
                body = WorkflowStreamingBody(
                    workflow_definition=context.workflow_definition,
                    output=StreamedOutput(name=output.name, value=value),
                )
                event = WorkflowExecutionStreamingEvent(
                    **_envelope(span, context.span_id, context.parent or None), body=body
                )
                self._emit(run.org, run.root, event)

    # helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _attributes(
        kind: str,
        span_id: UUID,
        run: _Run,
        parent: ParentContext | None,
        definition: CodeResourceDefinition,
        inputs: dict[str, Any],
    ) -> dict[str, str]:
        return {
            spans.KIND: kind,
            spans.SPAN_ID: str(span_id),
            spans.ROOT: str(run.root),
            spans.ORG: run.org,
            spans.PARENT: spans.to_json(parent),
            spans.DEFINITION: spans.to_json(definition),
            spans.INPUTS: spans.to_json(inputs),
        }

    @staticmethod
    def _fail(span: Span, failure: ExecutionFailure) -> WorkflowOutcome:
        error = ExecutionError(
            message=failure.message, code=failure.code, raw_data=failure.raw_data, stacktrace=failure.stacktrace
        )
        span.set_attribute(spans.ERROR, spans.to_json(error))
        span.set_status(Status(StatusCode.ERROR, failure.message))
        return WorkflowOutcome(None, failure)


def _envelope(span: Span, span_id: UUID, parent: ParentContext | None) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "timestamp": spans.now(),
        "trace_id": UUID(int=span.get_span_context().trace_id),
        "span_id": span_id,
        "parent": parent,
    }
