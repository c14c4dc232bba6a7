"""Events with values at and beyond what the store can hold, for the consumer's boundary tests."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from spanline.bus.interface import BusMessage
from spanline.consumer.decode import AcceptedEvent, RejectedMessage, decode_message

COUNTS = "body__usage_result__usage__0__ml_model_usage"


def fulfilled(root: str | None = None, **changes: Any) -> dict[str, Any]:
    """A schema-valid node.execution.fulfilled under the workflow span `root`, with one model call;
    `changes` set values by path (`body__usage_result__cost__0__value=1e30`)."""
    workflow = {"id": str(uuid.uuid4()), "name": "W", "module": ["w"]}
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "name": "node.execution.fulfilled",
        "timestamp": "2026-11-02T09:30:00.000001Z",
        "trace_id": str(uuid.uuid4()),
        "span_id": str(uuid.uuid4()),
        "parent": {
            "type": "WORKFLOW",
            "span_id": root or str(uuid.uuid4()),
            "parent": None,
            "workflow_definition": workflow,
        },
        "body": {
            "node_definition": {"id": str(uuid.uuid4()), "name": "N", "module": ["n"]},
            "outputs": {},
            "usage_result": {
                "usage": [{"ml_model_name": "m", "ml_model_usage": {"input_token_count": 3}}],
                "cost": [{"value": 0.5, "unit": "USD"}],
            },
        },
    }
    for path, value in changes.items():
        target = event
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[last] = value  # type: ignore[index]
    return event


def decode(document: dict[str, Any] | bytes, max_bytes: int = 1 << 22) -> AcceptedEvent | RejectedMessage:
    payload = document if isinstance(document, bytes) else msgspec.json.encode(document)
    return decode_message(BusMessage("t", 0, 0, None, payload, (), 0), default_org="o", max_bytes=max_bytes)


def reason_of(document: dict[str, Any] | bytes) -> str | None:
    result = decode(document)
    return result.reason if isinstance(result, RejectedMessage) else None


def nested(depth: int) -> bytes:
    event = msgspec.json.encode(fulfilled(body__outputs={}))
    return event.replace(b'"outputs":{}', b'"outputs":{"x":' + b"[" * depth + b"]" * depth + b"}")
