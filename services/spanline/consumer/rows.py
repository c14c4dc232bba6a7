"""Accepted events → the rows of one batch (RowBinary rows of `event_intake`, `usage` rows), plus the keys
whose derived rows must be re-derived after the write (executions, rollup buckets)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import msgspec

from spanline.consumer import row_binary as rb
from spanline.consumer.decode import AcceptedEvent, RejectedMessage
from spanline.consumer.write_errors import SERIALISATION_ERRORS, describe
from spanline.events.lineage import parent_span_id
from spanline.events.models import (
    WORKFLOW_EVENT_TYPES,
    CodeResourceDefinition,
    Event,
    NodeExecutionFulfilledEvent,
    NodeExecutionRejectedEvent,
    ParentContext,
    UsageResult,
    event_name,
)

# The columns of one RowBinary row of `event_intake`, in order (schemas/clickhouse/0019_raw_intake.sql).
INTAKE_COLUMNS: Final = (
    "org", "execution_id", "event_id", "span_id", "parent_span_id", "trace_id", "name", "timestamp",
    "kafka_partition", "kafka_offset", "payload", "kind", "definition_id", "definition_name",
    "definition_module", "status", "status_rank", "inputs", "outputs", "error", "error_code",
)  # fmt: skip
USAGE_COLUMNS: Final = (
    "org", "execution_id", "span_id", "event_id", "call_index", "kafka_partition", "timestamp",
    "workflow_id", "workflow_name", "node_id", "node_name", "status", "model", "provider", "input_tokens",
    "output_tokens", "cache_read_tokens", "cache_write_tokens", "input_chars", "output_chars",
    "compute_nanos", "cost_usd",
)  # fmt: skip

# Status a span takes from each event kind, and a rank that breaks timestamp ties deterministically.
_STATUS_BY_SUFFIX: Final = {
    "initiated": ("INITIATED", 1),
    "resumed": ("RESUMED", 2),
    "streaming": ("STREAMING", 3),
    "paused": ("PAUSED", 4),
    "fulfilled": ("FULFILLED", 5),
    "rejected": ("REJECTED", 6),
}
_ZERO: Final = Decimal(0)
_json: Final = msgspec.json.Encoder()

ExecutionKey = tuple[str, UUID]
BucketKey = tuple[int, str, datetime]
Row = tuple[Any, ...]


@dataclass(slots=True)
class BatchRows:
    """One batch: its events as RowBinary rows of `event_intake` (ClickHouse derives the rest from them),
    its model calls as `usage` rows, and the keys whose totals must be re-derived after the write."""

    intake: list[bytes] = field(default_factory=list)  # one RowBinary row per event
    usage: list[bytes] = field(default_factory=list)  # one RowBinary row per model call
    span_executions: set[ExecutionKey] = field(default_factory=set)  # runs with a span event in the batch
    buckets: set[BucketKey] = field(default_factory=set)
    refused: list[RejectedMessage] = field(default_factory=list)  # events no row can be built for

    @property
    def row_count(self) -> int:
        return len(self.intake) + len(self.usage)


def build_rows(accepted: Iterable[AcceptedEvent]) -> BatchRows:
    """Every event's rows, or (a value that cannot be serialised: `storable` should have refused it first)
    none of them and the event in `refused`, for the DLQ."""
    rows = BatchRows()
    for item in accepted:
        try:
            _add_event(rows, item)
        except SERIALISATION_ERRORS as exc:
            rows.refused.append(RejectedMessage(item.message, "write_refused", describe(exc)))
    return rows


_NO_SPAN_STATE: Final = b"".join(
    (rb.text(""), rb.uuid(UUID(int=0)), rb.text(""), rb.varint(0), rb.text(""), rb.uint8(0), rb.string(b"") * 4)
)
_KINDS: Final = {True: rb.text("workflow"), False: rb.text("node")}
_STATUSES: Final = {status: rb.text(status) + rb.uint8(rank) for status, rank in _STATUS_BY_SUFFIX.values()}
_EMPTY: Final = rb.string(b"")


def _add_event(rows: BatchRows, item: AcceptedEvent) -> None:
    event, org, execution_id = item.event, item.org, item.execution_id
    name = event_name(event)
    parts = [
        rb.text(org), rb.uuid(execution_id), rb.uuid(event.id), rb.uuid(event.span_id),
        rb.nullable_uuid(parent_span_id(event)), rb.uuid(event.trace_id), rb.text(name),
        rb.datetime64_us(event.timestamp), rb.uint32(item.partition), rb.uint64(item.offset),
        rb.string(item.payload),
    ]  # fmt: skip
    status, _ = _STATUS_BY_SUFFIX.get(name.rsplit(".", 1)[-1], ("", 0))
    if not status:  # logs and snapshots change no span state; they stay in the raw events
        parts.append(_NO_SPAN_STATE)
        rows.intake.append(b"".join(parts))
        return
    # Built whole before anything is added, so an event that cannot be serialised leaves no row behind.
    body: Any = event.body
    is_workflow = isinstance(event, WORKFLOW_EVENT_TYPES)
    definition: CodeResourceDefinition = body.workflow_definition if is_workflow else body.node_definition
    error = body.error if status == "REJECTED" else None
    parts += (
        _KINDS[is_workflow], rb.uuid(definition.id), rb.text(definition.name), rb.string_array(definition.module),
        _STATUSES[status],
        rb.string(_json.encode(body.inputs)) if status == "INITIATED" else _EMPTY,
        rb.string(_json.encode(body.outputs)) if status == "FULFILLED" else _EMPTY,
        rb.string(_json.encode(error)) if error is not None else _EMPTY,
        rb.text(error.code) if error is not None else _EMPTY,
    )  # fmt: skip
    usage: list[bytes] = []
    if isinstance(event, NodeExecutionFulfilledEvent | NodeExecutionRejectedEvent) and event.body.usage_result:
        usage = _usage_rows(item, event.body.usage_result, definition, status)
        rows.buckets.add((item.partition, org, event.timestamp.replace(second=0, microsecond=0)))
    rows.intake.append(b"".join(parts))
    rows.usage += usage
    rows.span_executions.add((org, execution_id))


def _usage_rows(item: AcceptedEvent, result: UsageResult, node: CodeResourceDefinition, status: str) -> list[bytes]:
    event, org, execution_id = item.event, item.org, item.execution_id
    workflow = _root_workflow(event)
    shared = b"".join((rb.text(org), rb.uuid(execution_id), rb.uuid(event.span_id), rb.uuid(event.id)))
    call_context = b"".join((
        rb.uint32(item.partition), rb.datetime64_us(event.timestamp),
        rb.uuid(workflow.id if workflow else UUID(int=0)), rb.text(workflow.name if workflow else ""),
        rb.uuid(node.id), rb.text(node.name), rb.text(status),
    ))  # fmt: skip
    return [
        b"".join((
            shared, rb.uint16(index), call_context, rb.text(model), rb.text(provider),
            *(rb.uint64(count) for count in counts), rb.decimal128_12(cost),
        ))
        for index, (model, provider, counts, cost) in enumerate(_calls(result))
    ]  # fmt: skip


def _calls(result: UsageResult) -> list[tuple[str, str, tuple[int, ...], Decimal]]:
    """One entry per model call. Costs pair with calls when the lists line up; otherwise the whole cost
    is booked on the first call (or on a model-less call when the result reports cost only)."""
    costs = [Decimal(repr(cost.value)) for cost in result.cost or ()]
    paired = len(costs) == len(result.usage)
    calls: list[tuple[str, str, tuple[int, ...], Decimal]] = []
    for index, usage in enumerate(result.usage):
        c = usage.ml_model_usage
        counts = (
            c.input_token_count or 0, c.output_token_count or 0, c.cache_read_input_tokens or 0,
            c.cache_creation_input_tokens or 0, c.input_char_count or 0, c.output_char_count or 0,
            c.compute_nanos or 0,
        )  # fmt: skip
        cost = costs[index] if paired else (sum(costs, _ZERO) if index == 0 else _ZERO)
        calls.append((usage.ml_model_name, usage.provider or "", counts, cost))
    if not result.usage and costs:
        calls.append(("", "", (0, 0, 0, 0, 0, 0, 0), sum(costs, _ZERO)))
    return calls


def _root_workflow(event: Event) -> CodeResourceDefinition | None:
    """The definition of the outermost workflow above the event: the run's workflow, for rollups."""
    root: CodeResourceDefinition | None = None
    context: ParentContext | None = event.parent
    while context is not None:
        if context.type == "WORKFLOW" and context.workflow_definition is not None:
            root = context.workflow_definition
        context = context.parent or None  # UNSET (left out) is null
    return root
