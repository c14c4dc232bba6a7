"""OTLP spans → SPEC §1 events, a translation at the edge (the rest of the pipeline sees only events).

- The execution id is the OTel trace id read as a UUID; it is the Vellum trace_id and the span_id of the
  workflow execution. The root span (the span without a parent) gives that workflow execution its events:
  initiated at its start, fulfilled or (status ERROR) rejected at its end.
- Every span, the root span included, is also a node execution with a UUID derived from (trace id, span
  id): the root span's node sits in the WORKFLOW context of the execution, every other span in a
  WORKFLOW_NODE context of its parent span inside that WORKFLOW. So a span's events follow from the span
  alone (its parent's id is derived, not looked up): spans may arrive in any order and in any number of
  requests, children before their root, and the root span's own model call and span events are kept.
- Event ids derive from (trace id, span id, kind), so a re-exported span changes nothing downstream.
- Definitions: name = the span name, module = [service.name, span name], id derived from both; so the
  workflow of a trace is its service and root span name.
- inputs: `{"attributes": the span's attributes}` plus `input` (OpenInference `input.value`); outputs:
  `output` (`output.value`) when present. The model call of an LLM span (GenAI / OpenInference) is the
  usage_result of its node's terminal event (otlp_attributes.py). A span event becomes a
  node.execution.log (an `exception` event at ERROR, others INFO).
- status ERROR → rejected with the status message (else the last exception event's message), code
  NODE_EXECUTION; the exception's type and stacktrace go to raw_data and stacktrace.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from uuid import UUID

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from spanline.api.intake.otlp_attributes import attributes, model_usage
from spanline.events.models import (
    CodeResourceDefinition,
    Event,
    ExecutionError,
    NodeExecutionFulfilledEvent,
    NodeExecutionInitiatedEvent,
    NodeExecutionLogEvent,
    NodeExecutionRejectedEvent,
    NodeFulfilledBody,
    NodeInitiatedBody,
    NodeLogBody,
    NodeRejectedBody,
    ParentContext,
    WorkflowExecutionFulfilledEvent,
    WorkflowExecutionInitiatedEvent,
    WorkflowExecutionRejectedEvent,
    WorkflowFulfilledBody,
    WorkflowInitiatedBody,
    WorkflowRejectedBody,
)
from spanline.executor.pricing import PriceTable

# uuid5 namespace of every id spanline derives from OTLP (fixed: re-exports must give the same ids).
OTLP_NAMESPACE: Final = UUID("6f1d6c2e-5a0b-4c53-9d2a-0f7e1b9b4a11")
ERROR_CODE: Final = "NODE_EXECUTION"


@dataclass(frozen=True, slots=True)
class Translation:
    events: list[tuple[UUID, Event]]  # (root execution id, event), in emission order per span
    rejected_spans: int
    problems: list[str]


def _derived(*parts: str) -> UUID:
    return uuid.uuid5(OTLP_NAMESPACE, "/".join(parts))


def _time(nanos: int) -> datetime:
    return datetime.fromtimestamp(nanos // 1000 / 1e6, UTC)


@dataclass(frozen=True, slots=True)
class _Span:
    span: Span
    service: str
    execution_id: UUID
    trace_hex: str
    attrs: dict[str, Any]

    @property
    def is_root(self) -> bool:
        return not self.span.parent_span_id

    def span_uuid(self) -> UUID:
        return _derived(self.trace_hex, self.span.span_id.hex(), "span")

    def event_id(self, kind: str) -> UUID:
        return _derived(self.trace_hex, self.span.span_id.hex(), kind)

    def definition(self, kind: str) -> CodeResourceDefinition:
        name = self.span.name or "span"
        return CodeResourceDefinition(
            id=_derived(kind, self.service, name), name=name, module=[self.service, name], exclude_from_monitoring=False
        )

    def node_parent(self) -> ParentContext:
        workflow = ParentContext(type="WORKFLOW", span_id=self.execution_id, parent=None)
        if self.is_root:
            return workflow
        parent_uuid = _derived(self.trace_hex, self.span.parent_span_id.hex(), "span")
        return ParentContext(type="WORKFLOW_NODE", span_id=parent_uuid, parent=workflow)

    def node_common(self, kind: str, nanos: int) -> dict[str, Any]:
        return {
            "id": self.event_id(kind),
            "timestamp": _time(nanos),
            "trace_id": self.execution_id,
            "span_id": self.span_uuid(),
            "parent": self.node_parent(),
        }

    def workflow_common(self, kind: str, nanos: int) -> dict[str, Any]:
        return {
            "id": self.event_id(f"workflow/{kind}"),
            "timestamp": _time(nanos),
            "trace_id": self.execution_id,
            "span_id": self.execution_id,
            "parent": None,
        }


def _error(span: _Span, code: str) -> ExecutionError:
    exceptions = [attributes(e.attributes) for e in span.span.events if e.name == "exception"]
    last = exceptions[-1] if exceptions else {}
    message = span.span.status.message or str(last.get("exception.message") or "span status ERROR")
    raw = {key: last[key] for key in ("exception.type",) if key in last}
    if "error.type" in span.attrs:
        raw["error.type"] = span.attrs["error.type"]
    stacktrace = last.get("exception.stacktrace")
    return ExecutionError(
        message=message, code=code, raw_data=raw or None, stacktrace=str(stacktrace) if stacktrace else None
    )


def _io(span: _Span) -> tuple[dict[str, Any], dict[str, Any]]:
    inputs: dict[str, Any] = {"attributes": span.attrs}
    if "input.value" in span.attrs:
        inputs["input"] = span.attrs["input.value"]
    outputs = {"output": span.attrs["output.value"]} if "output.value" in span.attrs else {}
    return inputs, outputs


def _workflow_events(span: _Span) -> Iterator[Event]:
    definition = span.definition("workflow")
    inputs, outputs = _io(span)
    yield WorkflowExecutionInitiatedEvent(
        **span.workflow_common("initiated", span.span.start_time_unix_nano),
        body=WorkflowInitiatedBody(workflow_definition=definition, inputs=inputs),
    )
    end = span.workflow_common("terminal", span.span.end_time_unix_nano)
    if span.span.status.code == Status.STATUS_CODE_ERROR:
        error = _error(span, ERROR_CODE)
        yield WorkflowExecutionRejectedEvent(
            **end, body=WorkflowRejectedBody(workflow_definition=definition, error=error)
        )
    else:
        yield WorkflowExecutionFulfilledEvent(
            **end, body=WorkflowFulfilledBody(workflow_definition=definition, outputs=outputs)
        )


def _node_events(span: _Span, prices: PriceTable) -> Iterator[Event]:
    definition = span.definition("node")
    inputs, outputs = _io(span)
    start, end_nanos = span.span.start_time_unix_nano, span.span.end_time_unix_nano
    yield NodeExecutionInitiatedEvent(
        **span.node_common("initiated", start), body=NodeInitiatedBody(node_definition=definition, inputs=inputs)
    )
    for index, otel_event in enumerate(span.span.events):
        attrs = attributes(otel_event.attributes)
        severity: Literal["ERROR", "INFO"] = "ERROR" if otel_event.name == "exception" else "INFO"
        message = str(attrs.get("exception.message") or otel_event.name or "event")
        yield NodeExecutionLogEvent(
            **span.node_common(f"log/{index}", otel_event.time_unix_nano or start),
            body=NodeLogBody(node_definition=definition, message=message, severity=severity, attributes=attrs),
        )
    usage = model_usage(span.attrs, end_nanos - start, prices)
    end = span.node_common("terminal", end_nanos)
    if span.span.status.code == Status.STATUS_CODE_ERROR:
        body = NodeRejectedBody(node_definition=definition, error=_error(span, ERROR_CODE), usage_result=usage)
        yield NodeExecutionRejectedEvent(**end, body=body)
    else:
        yield NodeExecutionFulfilledEvent(
            **end, body=NodeFulfilledBody(node_definition=definition, outputs=outputs, usage_result=usage)
        )


def _problem(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r}: trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r}: span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: parent_span_id must be 8 bytes"
    if span.end_time_unix_nano < span.start_time_unix_nano or not span.start_time_unix_nano:
        return f"span {span.name!r}: needs a start time and an end time not before it"
    return None


def _service(resource_attrs: Mapping[str, Any]) -> str:
    return str(resource_attrs.get("service.name") or "unknown_service")


def translate(request: ExportTraceServiceRequest, prices: PriceTable) -> Translation:
    events: list[tuple[UUID, Event]] = []
    problems: list[str] = []
    for resource_spans in request.resource_spans:
        service = _service(attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for otel_span in scope_spans.spans:
                problem = _problem(otel_span)
                if problem is not None:
                    problems.append(problem)
                    continue
                execution_id = UUID(bytes=otel_span.trace_id)
                span = _Span(
                    otel_span, service, execution_id, otel_span.trace_id.hex(), attributes(otel_span.attributes)
                )
                if span.is_root:
                    events.extend((execution_id, event) for event in _workflow_events(span))
                events.extend((execution_id, event) for event in _node_events(span, prices))
    return Translation(events, len(problems), problems)
