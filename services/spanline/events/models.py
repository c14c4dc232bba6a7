"""The event contract of SPEC §1 as msgspec Structs: one decode pass both parses and validates.

Unknown *fields* are ignored (newer emitters add some) and unknown ParentContext *types* are kept as
plain strings; the consumer stores every event's original bytes, so nothing an emitter sent is lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

API_VERSIONS: Final = ("2024-10-25", "2025-07-30")
ApiVersion = Literal["2024-10-25", "2025-07-30"]
# The pattern makes the published schema exactly as strict as the decoder (RFC 3339 with a `T`, no leap
# second), so every schema-valid document decodes.
RFC3339_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}[Tt][0-2]\d:[0-5]\d:[0-5]\d(\.\d+)?([Zz]|[+-][0-2]\d:[0-5]\d)$"
AwareDatetime = Annotated[datetime, Meta(tz=True, extra_json_schema={"pattern": RFC3339_PATTERN})]
Count = Annotated[int, Meta(ge=0)]

# ParentContext types the contract names; any other string is accepted and kept.
KNOWN_PARENT_TYPES: Final = frozenset(
    {
        "WORKFLOW",
        "WORKFLOW_NODE",
        "WORKFLOW_RELEASE_TAG",
        "PROMPT_RELEASE_TAG",
        "WORKFLOW_SANDBOX",
        "API_REQUEST",
        "EXTERNAL",
        "SCHEDULED",
        "INTEGRATION",
    }
)
KNOWN_ERROR_CODES: Final = frozenset(
    {
        "WORKFLOW_INITIALIZATION",
        "WORKFLOW_CANCELLED",
        "WORKFLOW_TIMEOUT",
        "PROVIDER_CREDENTIALS_UNAVAILABLE",
        "INTEGRATION_CREDENTIALS_UNAVAILABLE",
        "NODE_EXECUTION_COUNT_LIMIT_REACHED",
        "INTERNAL_SERVER_ERROR",
        "NODE_EXECUTION",
        "NODE_CANCELLED",
        "NODE_TIMEOUT",
        "LLM_PROVIDER",
        "INVALID_TEMPLATE",
        "INVALID_INPUTS",
        "PROVIDER_QUOTA_EXCEEDED",
        "USER_DEFINED_ERROR",
        "INVALID_WORKFLOW",
        "INVALID_OUTPUTS",
        "INVALID_STATE",
        "INVALID_CODE",
        "INTERNAL_ERROR",
        "PROVIDER_ERROR",
    }
)


class CodeResourceDefinition(Struct, omit_defaults=True):
    id: UUID
    name: str
    module: list[str]
    exclude_from_monitoring: bool | None = None


class ParentContext(Struct, omit_defaults=True, kw_only=True):
    type: str
    span_id: UUID
    # SPEC §1 always carries it; vellum-ai's own serializer leaves a null one out: missing decodes as
    # UNSET (read it as null) and is not written back, so what an emitter sent round-trips as it was.
    parent: ParentContext | UnsetType | None = UNSET
    workflow_definition: CodeResourceDefinition | None = None
    node_definition: CodeResourceDefinition | None = None
    trigger_id: str | None = None
    links: list[SpanLink] | None = None


class SpanLink(Struct, omit_defaults=True):
    trace_id: UUID
    type: str
    span_context: ParentContext | None = None


class ExecutionError(Struct, omit_defaults=True):
    message: str
    code: str
    raw_data: dict[str, Any] | None = None
    stacktrace: str | None = None


class StreamedOutput(Struct, omit_defaults=True):
    name: str
    value: Any | UnsetType = UNSET
    delta: Any | UnsetType = UNSET


class ModelUsageCounts(Struct, omit_defaults=True):
    input_token_count: Count | None = None
    output_token_count: Count | None = None
    cache_read_input_tokens: Count | None = None
    cache_creation_input_tokens: Count | None = None
    input_char_count: Count | None = None
    output_char_count: Count | None = None
    compute_nanos: Count | None = None


class ModelUsage(Struct, omit_defaults=True):
    ml_model_name: str
    ml_model_usage: ModelUsageCounts
    provider: str | None = None


class Cost(Struct):  # `unit` is always written, as Vellum's emitters do
    value: float
    unit: str = "USD"


class UsageResult(Struct, omit_defaults=True):
    usage: list[ModelUsage] = msgspec.field(default_factory=list)
    cost: list[Cost] | None = None


# Bodies -------------------------------------------------------------------------------------------


class _WorkflowBody(Struct, omit_defaults=True, kw_only=True):
    workflow_definition: CodeResourceDefinition


class WorkflowInitiatedBody(_WorkflowBody, kw_only=True):
    inputs: dict[str, Any]
    trigger: CodeResourceDefinition | None = None


class WorkflowStreamingBody(_WorkflowBody, kw_only=True):
    output: StreamedOutput


class WorkflowFulfilledBody(_WorkflowBody, kw_only=True):
    outputs: dict[str, Any]
    final_state: dict[str, Any] | None = None


class WorkflowRejectedBody(_WorkflowBody, kw_only=True):
    error: ExecutionError


class WorkflowPausedBody(_WorkflowBody, kw_only=True):
    external_inputs: list[Any]


class WorkflowResumedBody(_WorkflowBody, kw_only=True):
    pass


class WorkflowSnapshottedBody(_WorkflowBody, kw_only=True):
    state: dict[str, Any]
    edited_by: CodeResourceDefinition | None = None


class _NodeBody(Struct, omit_defaults=True, kw_only=True):
    node_definition: CodeResourceDefinition


class NodeInitiatedBody(_NodeBody, kw_only=True):
    inputs: dict[str, Any]


class NodeStreamingBody(_NodeBody, kw_only=True):
    output: StreamedOutput
    invoked_ports: list[Any] | None = None


class NodeFulfilledBody(_NodeBody, kw_only=True):
    outputs: dict[str, Any]
    invoked_ports: list[Any] | None = None
    mocked: bool | None = None
    usage_result: UsageResult | None = None


class NodeRejectedBody(_NodeBody, kw_only=True):
    error: ExecutionError
    usage_result: UsageResult | None = None


class NodePausedBody(_NodeBody, kw_only=True):
    pass


class NodeResumedBody(_NodeBody, kw_only=True):
    pass


class NodeLogBody(_NodeBody, kw_only=True):
    message: str
    severity: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    attributes: dict[str, Any] | None = None


# Envelopes ----------------------------------------------------------------------------------------


class _Envelope(Struct, tag_field="name", kw_only=True):
    id: UUID
    timestamp: AwareDatetime
    api_version: ApiVersion = "2024-10-25"
    trace_id: UUID
    span_id: UUID
    parent: ParentContext | None = None
    links: list[SpanLink] | None = None


class WorkflowExecutionInitiatedEvent(_Envelope, tag="workflow.execution.initiated", kw_only=True):
    body: WorkflowInitiatedBody


class WorkflowExecutionStreamingEvent(_Envelope, tag="workflow.execution.streaming", kw_only=True):
    body: WorkflowStreamingBody


class WorkflowExecutionFulfilledEvent(_Envelope, tag="workflow.execution.fulfilled", kw_only=True):
    body: WorkflowFulfilledBody


class WorkflowExecutionRejectedEvent(_Envelope, tag="workflow.execution.rejected", kw_only=True):
    body: WorkflowRejectedBody


class WorkflowExecutionPausedEvent(_Envelope, tag="workflow.execution.paused", kw_only=True):
    body: WorkflowPausedBody


class WorkflowExecutionResumedEvent(_Envelope, tag="workflow.execution.resumed", kw_only=True):
    body: WorkflowResumedBody


class WorkflowExecutionSnapshottedEvent(_Envelope, tag="workflow.execution.snapshotted", kw_only=True):
    body: WorkflowSnapshottedBody


class NodeExecutionInitiatedEvent(_Envelope, tag="node.execution.initiated", kw_only=True):
    body: NodeInitiatedBody


class NodeExecutionStreamingEvent(_Envelope, tag="node.execution.streaming", kw_only=True):
    body: NodeStreamingBody


class NodeExecutionFulfilledEvent(_Envelope, tag="node.execution.fulfilled", kw_only=True):
    body: NodeFulfilledBody


class NodeExecutionRejectedEvent(_Envelope, tag="node.execution.rejected", kw_only=True):
    body: NodeRejectedBody


class NodeExecutionPausedEvent(_Envelope, tag="node.execution.paused", kw_only=True):
    body: NodePausedBody


class NodeExecutionResumedEvent(_Envelope, tag="node.execution.resumed", kw_only=True):
    body: NodeResumedBody


class NodeExecutionLogEvent(_Envelope, tag="node.execution.log", kw_only=True):
    body: NodeLogBody


WorkflowEvent = (
    WorkflowExecutionInitiatedEvent
    | WorkflowExecutionStreamingEvent
    | WorkflowExecutionFulfilledEvent
    | WorkflowExecutionRejectedEvent
    | WorkflowExecutionPausedEvent
    | WorkflowExecutionResumedEvent
    | WorkflowExecutionSnapshottedEvent
)
NodeEvent = (
    NodeExecutionInitiatedEvent
    | NodeExecutionStreamingEvent
    | NodeExecutionFulfilledEvent
    | NodeExecutionRejectedEvent
    | NodeExecutionPausedEvent
    | NodeExecutionResumedEvent
    | NodeExecutionLogEvent
)
Event = WorkflowEvent | NodeEvent

WORKFLOW_EVENT_TYPES: Final[tuple[type[_Envelope], ...]] = WorkflowEvent.__args__
NODE_EVENT_TYPES: Final[tuple[type[_Envelope], ...]] = NodeEvent.__args__
EVENT_TYPES: Final[tuple[type[_Envelope], ...]] = WORKFLOW_EVENT_TYPES + NODE_EVENT_TYPES
EVENT_TYPE_BY_NAME: Final[dict[str, type[_Envelope]]] = {str(cls.__struct_config__.tag): cls for cls in EVENT_TYPES}
EVENT_NAMES: Final[tuple[str, ...]] = tuple(EVENT_TYPE_BY_NAME)
TERMINAL_WORKFLOW_EVENT_NAMES: Final = frozenset(
    {"workflow.execution.fulfilled", "workflow.execution.rejected", "workflow.execution.paused"}
)
TERMINAL_NODE_EVENT_NAMES: Final = frozenset({"node.execution.fulfilled", "node.execution.rejected"})


def event_name(event: Event) -> str:
    return str(event.__struct_config__.tag)
