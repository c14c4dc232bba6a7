"""An execution of one workflow span and `spans - 1` node spans, many sharing a start time (span_id breaks
the ties), for the detail API's paging and page-cost tests and its benchmark; and that execution at
100,000 spans, ingested once per session for the tests that only read it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.store_ingest import ingest

SPANS = 100_000
WORKFLOW = {"id": "6606c261-1566-5e10-8654-6b51fa242bf7", "name": "Big", "module": ["big"]}


def event(name: str, span_id: uuid.UUID, at: datetime, parent: Any, body: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "id": str(uuid.uuid4()),
            "timestamp": at.isoformat().replace("+00:00", "Z"),
            "api_version": "2024-10-25",
            "trace_id": "cd613e30-d8f1-4adf-91b7-584a2265b1f5",
            "span_id": str(span_id),
            "parent": parent,
            "links": None,
            "name": name,
            "body": body,
        }
    )


def big_execution(execution_id: uuid.UUID, spans: int) -> tuple[list[bytes], list[tuple[datetime, str]]]:
    """A workflow with `spans - 1` node spans; many share a start time, so span_id breaks the ties."""
    start = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    payloads = [
        event(
            "workflow.execution.initiated",
            execution_id,
            start,
            None,
            {"workflow_definition": WORKFLOW, "inputs": {"question": "big?"}},
        )
    ]
    order = [(start, str(execution_id))]
    parent = {"type": "WORKFLOW", "span_id": str(execution_id), "workflow_definition": WORKFLOW, "parent": None}
    for index in range(spans - 1):
        span_id = uuid.uuid4()
        at = start + timedelta(microseconds=1 + index // 7)
        node = {"id": str(uuid.uuid5(execution_id, str(index % 50))), "name": f"Node{index % 50}", "module": ["big"]}
        payloads.append(event("node.execution.initiated", span_id, at, parent, {"node_definition": node, "inputs": {}}))
        if index % 3 == 0:
            payloads.append(
                event(
                    "node.execution.fulfilled",
                    span_id,
                    at + timedelta(milliseconds=5),
                    parent,
                    {"node_definition": node, "outputs": {"n": index}},
                )
            )
        order.append((at, str(span_id)))
    order.sort()
    return payloads, order


@dataclass(frozen=True, slots=True)
class StoredExecution:
    dsn: str
    org: str
    execution_id: uuid.UUID
    order: list[tuple[datetime, str]]  # (start, span_id) in page order


def store_big_execution(dsn: str, migrations: Path) -> StoredExecution:
    """Migrate the database at `dsn` and ingest one SPANS-span execution of "acme" into it."""
    execution_id = uuid.uuid4()
    payloads, order = big_execution(execution_id, SPANS)

    async def load() -> None:
        store = Store(dsn, threads=2)
        try:
            await store.run(lambda client: apply_migrations(client, migrations))
            await ingest(store, payloads, org="acme", key=str(execution_id).encode())
        finally:
            store.close()

    asyncio.run(load())
    return StoredExecution(dsn, "acme", execution_id, order)
