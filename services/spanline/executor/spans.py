"""OpenTelemetry spans → Vellum events (SPEC §1).

Every workflow and node execution is an opentelemetry-sdk span. The runner puts what the events need
into span attributes (`spanline.*`, JSON where structured); `VellumEventProcessor` turns a span's start
into `*.initiated` and its end into `*.fulfilled` / `*.rejected`. Streaming events happen inside a span
and are emitted by `SpanEvents.streaming` with the same ids (OTel span processors see no span events).
The Vellum span_id is a UUID kept in `spanline.span_id` (OTel span ids are 64-bit); the Vellum trace_id
is the OTel trace id read as a UUID.

Every id is derived from the execution id (`event_id`, `tracing.DeterministicTraceIds`, the runner's span
ids): a redelivered run request re-run after a crash emits the same ids, which the consumer dedups.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

import msgspec
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import Attributes

from spanline.events.models import (
    CodeResourceDefinition,
    Event,
    ExecutionError,
    NodeExecutionFulfilledEvent,
    NodeExecutionInitiatedEvent,
    NodeExecutionRejectedEvent,
    NodeFulfilledBody,
    NodeInitiatedBody,
    NodeRejectedBody,
    ParentContext,
    UsageResult,
    WorkflowExecutionFulfilledEvent,
    WorkflowExecutionInitiatedEvent,
    WorkflowExecutionRejectedEvent,
    WorkflowFulfilledBody,
    WorkflowInitiatedBody,
    WorkflowRejectedBody,
)

KIND: Final = "spanline.kind"  # "workflow" | "node"
SPAN_ID: Final = "spanline.span_id"
ROOT: Final = "spanline.root_execution_id"
ORG: Final = "spanline.org"
PARENT: Final = "spanline.parent"  # JSON ParentContext or null
DEFINITION: Final = "spanline.definition"  # JSON CodeResourceDefinition
INPUTS: Final = "spanline.inputs"  # JSON object
OUTPUTS: Final = "spanline.outputs"  # JSON object, set before a successful end
ERROR: Final = "spanline.error"  # JSON ExecutionError, set before a failed end
USAGE: Final = "spanline.usage_result"  # JSON UsageResult (model nodes)
INVOKED_PORTS: Final = "spanline.invoked_ports"  # JSON list (conditional nodes)

EventSink = Callable[[str, UUID, Event], None]
_encode = msgspec.json.encode


def event_id(span_id: UUID, role: str) -> UUID:
    """The id of a span's event in its `role` ("initiated", "end", "delta:3", ...): the same on a re-run."""
    return uuid.uuid5(span_id, role)


def to_json(value: Any) -> str:
    return _encode(value).decode()


def vellum_trace_id(span: ReadableSpan) -> UUID:
    context = span.get_span_context()
    assert context is not None
    return UUID(int=context.trace_id)


def _timestamp(nanos: int | None) -> datetime:
    return datetime.fromtimestamp((nanos or 0) / 1e9, UTC)


class _Attrs:
    """Typed reads of the spanline attributes of one span."""

    def __init__(self, attributes: Attributes) -> None:
        self._attributes: Mapping[str, Any] = attributes or {}

    def text(self, key: str) -> str:
        return str(self._attributes[key])

    def json(self, key: str, kind: Any = object) -> Any:
        raw = self._attributes.get(key)
        return None if raw is None else msgspec.json.decode(str(raw), type=kind)

    def __contains__(self, key: str) -> bool:
        return key in self._attributes


class VellumEventProcessor(SpanProcessor):
    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attrs = _Attrs(span.attributes)
        if KIND not in attrs:
            return
        common = self._common(span, attrs, span.start_time, "initiated")
        definition = attrs.json(DEFINITION, CodeResourceDefinition)
        inputs = attrs.json(INPUTS, dict[str, Any]) or {}
        event: Event
        if attrs.text(KIND) == "workflow":
            event = WorkflowExecutionInitiatedEvent(
                **common, body=WorkflowInitiatedBody(workflow_definition=definition, inputs=inputs)
            )
        else:
            event = NodeExecutionInitiatedEvent(
                **common, body=NodeInitiatedBody(node_definition=definition, inputs=inputs)
            )
        self._sink(attrs.text(ORG), UUID(attrs.text(ROOT)), event)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = _Attrs(span.attributes)
        if KIND not in attrs:
            return
        common = self._common(span, attrs, span.end_time, "end")  # one terminal id, whatever the outcome
        definition = attrs.json(DEFINITION, CodeResourceDefinition)
        error = attrs.json(ERROR, ExecutionError)
        usage = attrs.json(USAGE, UsageResult)
        event: Event
        if attrs.text(KIND) == "workflow":
            if error is not None:
                event = WorkflowExecutionRejectedEvent(
                    **common, body=WorkflowRejectedBody(workflow_definition=definition, error=error)
                )
            else:
                outputs = attrs.json(OUTPUTS, dict[str, Any]) or {}
                event = WorkflowExecutionFulfilledEvent(
                    **common, body=WorkflowFulfilledBody(workflow_definition=definition, outputs=outputs)
                )
        elif error is not None:
            event = NodeExecutionRejectedEvent(
                **common, body=NodeRejectedBody(node_definition=definition, error=error, usage_result=usage)
            )
        else:
            event = NodeExecutionFulfilledEvent(
                **common,
                body=NodeFulfilledBody(
                    node_definition=definition,
                    outputs=attrs.json(OUTPUTS, dict[str, Any]) or {},
                    invoked_ports=attrs.json(INVOKED_PORTS, list[Any]),
                    usage_result=usage,
                ),
            )
        self._sink(attrs.text(ORG), UUID(attrs.text(ROOT)), event)

    @staticmethod
    def _common(span: ReadableSpan, attrs: _Attrs, nanos: int | None, role: str) -> dict[str, Any]:
        span_id = UUID(attrs.text(SPAN_ID))
        return {
            "id": event_id(span_id, role),
            "timestamp": _timestamp(nanos),
            "trace_id": vellum_trace_id(span),
            "span_id": span_id,
            "parent": attrs.json(PARENT, ParentContext | None),
        }


def now() -> datetime:
    return datetime.now(UTC)
