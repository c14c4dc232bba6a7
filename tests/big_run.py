"""A finished run of any size with a real shape, for the UI's tests and benchmark: a top-level workflow
whose nodes each run a subworkflow of many steps (node → subworkflow → nodes, as SPEC §1 nests them),
every span fulfilled, one step in ten calling a model. Timestamps increase strictly in emission order,
so the tree's depth-first order is also the detail API's page order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
ROOT = {"id": "7c0d9b7e-6f57-5d2c-9a55-1b7b2c1f0a01", "name": "BulkEnrich", "module": ["bench", "bulk"]}
BATCH = {"id": "7c0d9b7e-6f57-5d2c-9a55-1b7b2c1f0a02", "name": "EnrichBatch", "module": ["bench", "bulk"]}
USAGE = {
    "usage": [
        {
            "ml_model_name": "gpt-4o-mini",
            "provider": "openai",
            "ml_model_usage": {"input_token_count": 120, "output_token_count": 30, "compute_nanos": 40_000_000},
        }
    ],
    "cost": [{"value": 0.000036, "unit": "USD"}],
}


def _event(name: str, span_id: str, at: datetime, parent: Any, body: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "api_version": "2024-10-25",
            "trace_id": "5b1f0c1e-2f0a-4c55-9b7e-6f0c1a2b3c4d",
            "span_id": span_id,
            "parent": parent,
            "links": None,
            "name": name,
            "body": body,
        }
    )


def _definition(kind: str, name: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{name}")), "name": name, "module": ["bench"]}


class _Emitter:
    """Events in emission order, each a few microseconds after the one before."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.clock = START

    def emit(self, name: str, span_id: str, parent: Any, body: dict[str, Any], *, after_us: int = 50) -> None:
        self.clock += timedelta(microseconds=after_us)
        self.payloads.append(_event(name, span_id, self.clock, parent, body))


def big_run(execution_id: str, batches: int, steps: int) -> tuple[list[bytes], list[str]]:
    """1 + batches * (2 + steps) spans: the events in emission order and the span ids in page order."""
    out = _Emitter()
    order = [execution_id]
    root = {"workflow_definition": ROOT}
    root_context = {"type": "WORKFLOW", "span_id": execution_id, **root, "parent": None}
    out.emit("workflow.execution.initiated", execution_id, None, {**root, "inputs": {"rows": batches * steps}})
    for batch in range(batches):
        node_id, sub_id = str(uuid.uuid4()), str(uuid.uuid4())
        batch_node = {"node_definition": _definition("batch", f"Batch{batch}")}
        node_context = {"type": "WORKFLOW_NODE", "span_id": node_id, **batch_node, "parent": root_context}
        sub = {"workflow_definition": BATCH}
        sub_context = {"type": "WORKFLOW", "span_id": sub_id, **sub, "parent": node_context}
        out.emit("node.execution.initiated", node_id, root_context, {**batch_node, "inputs": {"batch": batch}})
        out.emit("workflow.execution.initiated", sub_id, node_context, {**sub, "inputs": {"batch": batch}})
        order += [node_id, sub_id]
        for step in range(steps):
            step_id = str(uuid.uuid4())
            step_node = {"node_definition": _definition("step", f"Step{step % 20}")}
            out.emit("node.execution.initiated", step_id, sub_context, {**step_node, "inputs": {"row": step}})
            body: dict[str, Any] = {**step_node, "outputs": {"row": step, "ok": True}}
            if step % 10 == 0:
                body["usage_result"] = USAGE
            out.emit("node.execution.fulfilled", step_id, sub_context, body, after_us=40)
            order.append(step_id)
        out.emit("workflow.execution.fulfilled", sub_id, node_context, {**sub, "outputs": {"done": steps}})
        out.emit("node.execution.fulfilled", node_id, root_context, {**batch_node, "outputs": {"done": steps}})
    out.emit("workflow.execution.fulfilled", execution_id, None, {**root, "outputs": {"rows": batches * steps}})
    return out.payloads, order
