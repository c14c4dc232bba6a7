"""A request to run a workflow: what the API publishes on `spanline.executions` and workers consume.

It carries the definition itself and every subworkflow it calls (resolved by the API when the run is
requested), so a worker needs no store and runs exactly the versions that were current at request time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class WorkflowSnapshot(msgspec.Struct, frozen=True):
    workflow_id: UUID
    version: int
    definition: dict[str, Any]


class ExecutionRequest(msgspec.Struct, frozen=True, kw_only=True):
    execution_id: UUID
    org: str
    workflow: WorkflowSnapshot
    subworkflows: dict[str, WorkflowSnapshot] = msgspec.field(default_factory=dict)
    inputs: dict[str, Any] = msgspec.field(default_factory=dict)
    external_id: str | None = None
    metadata: dict[str, Any] | None = None
    requested_at: datetime


_decoder = msgspec.json.Decoder(ExecutionRequest)


def encode_request(request: ExecutionRequest) -> bytes:
    return msgspec.json.encode(request)


def decode_request(data: bytes) -> ExecutionRequest:
    return _decoder.decode(data)
