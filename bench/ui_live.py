"""The live run bench/ui.py emits: a workflow whose steps start and finish one event at a time."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import orjson

WORKFLOW = {"id": "0b6f3c1e-7d1a-5e55-9a0c-3f1f0e2d4c01", "name": "LiveSteps", "module": ["bench", "live"]}


def _event(name: str, span_id: str, parent: Any, body: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "api_version": "2024-10-25",
            "trace_id": "0b6f3c1e-7d1a-4e55-9a0c-3f1f0e2d4c02",
            "span_id": span_id,
            "parent": parent,
            "links": None,
            "name": name,
            "body": body,
        }
    )


def live_events(execution_id: str, count: int) -> list[tuple[str, Callable[[], bytes]]]:
    """(key the page's probe records, the event's builder) pairs; each event is built when it is emitted,
    so its timestamp is the emission time. The workflow starts, then each step's initiated and fulfilled
    events alternate, and the workflow ends; keys are `<span_id>:ANY` (its row is in the DOM) and
    `<span_id>:FULFILLED`."""
    root = {"workflow_definition": WORKFLOW}
    context = {"type": "WORKFLOW", "span_id": execution_id, **root, "parent": None}
    events = [
        (
            f"{execution_id}:ANY",
            partial(_event, "workflow.execution.initiated", execution_id, None, {**root, "inputs": {}}),
        )
    ]
    for step in range((count - 2) // 2):
        span_id = str(uuid.uuid4())
        definition = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"live{step % 10}")),
            "name": f"Live{step % 10}",
            "module": ["bench"],
        }
        node = {"node_definition": definition}
        events.append(
            (
                f"{span_id}:ANY",
                partial(_event, "node.execution.initiated", span_id, context, {**node, "inputs": {}}),
            )
        )
        events.append(
            (
                f"{span_id}:FULFILLED",
                partial(_event, "node.execution.fulfilled", span_id, context, {**node, "outputs": {"step": step}}),
            )
        )
    events.append(
        (
            f"{execution_id}:FULFILLED",
            partial(_event, "workflow.execution.fulfilled", execution_id, None, {**root, "outputs": {}}),
        )
    )
    return events
