"""Generated executions written into a test store the way the consumer writes them (decode → rows →
EventBatchWriter, no Kafka), the model calls they contain read straight from the generated events (the
brute-force side of the read-API tests), and an API client on the app."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
from asgi_lifespan import LifespanManager

from spanline.api.app import create_app
from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.bus.memory import MemoryBus
from spanline.bus.partitioning import partition_for_key
from spanline.core.config import Settings
from spanline.store.store import Store
from tests.consumer_events import Execution, generate_execution
from tests.store_ingest import write_messages

PARTITIONS = 4
DEFAULT_ORG = "default"


def org_of(execution: Execution) -> str:
    return execution.org or DEFAULT_ORG


def generate_executions(
    rng: random.Random, count: int, *, orgs: Sequence[str | None], start: datetime, days: int
) -> list[Execution]:
    """Runs spread over `days` days (random second), each in a random organization."""
    return [
        generate_execution(
            rng, start=start + timedelta(seconds=rng.randint(0, days * 86_400 - 1)), org=rng.choice(list(orgs))
        )
        for _ in range(count)
    ]


def messages_of(executions: Sequence[Execution]) -> list[BusMessage]:
    """Every event once, as Kafka would deliver it: keyed by execution, offsets in order per partition."""
    messages: list[BusMessage] = []
    offsets = [0] * PARTITIONS
    for execution in executions:
        key = execution.execution_id.encode()
        partition = partition_for_key(key, PARTITIONS)
        headers = ((ORG_HEADER, execution.org.encode()),) if execution.org else ()
        for payload in execution.payloads():
            messages.append(BusMessage("spanline.events", partition, offsets[partition], key, payload, headers, 0))
            offsets[partition] += 1
    return messages


async def ingest(store: Store, executions: Sequence[Execution], *, batches: int = 3) -> None:
    """Every event once, in random-sized batches, through the consumer's decode → rows → writer path."""
    messages = messages_of(executions)
    await write_messages(store, messages, batch_size=max(1, -(-len(messages) // batches)), default_org=DEFAULT_ORG)


@dataclass(frozen=True, slots=True)
class Call:
    """One model call as the generated events report it."""

    org: str
    execution_id: str
    span_id: str
    timestamp: datetime
    workflow_id: str
    workflow_name: str
    status: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    compute_nanos: int
    cost_usd: Decimal

    @property
    def minute(self) -> datetime:
        return self.timestamp.replace(second=0, microsecond=0)


def _root_workflow(event: dict[str, Any]) -> dict[str, Any]:
    context, root = event["parent"], None
    while context is not None:
        if context["type"] == "WORKFLOW":
            root = context["workflow_definition"]
        context = context["parent"]
    assert root is not None
    return root


def calls_of(executions: Sequence[Execution]) -> list[Call]:
    calls = []
    for execution in executions:
        for event in execution.events:
            usage_result = event["body"].get("usage_result")
            if not usage_result:
                continue
            workflow = _root_workflow(event)
            timestamp = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            status = "FULFILLED" if event["name"].endswith("fulfilled") else "REJECTED"
            assert len(usage_result["usage"]) == len(usage_result["cost"])
            for usage, cost in zip(usage_result["usage"], usage_result["cost"], strict=True):
                counts = usage["ml_model_usage"]
                calls.append(
                    Call(
                        org_of(execution), execution.execution_id, event["span_id"], timestamp, workflow["id"],
                        workflow["name"], status, usage["ml_model_name"], usage["provider"],
                        counts["input_token_count"], counts["output_token_count"], counts["cache_read_input_tokens"],
                        counts["cache_creation_input_tokens"], counts["compute_nanos"], Decimal(repr(cost["value"])),
                    )
                )  # fmt: skip
    return calls


def spans_of(execution: Execution) -> dict[str, list[dict[str, Any]]]:
    """The execution's events by span id, in emission order."""
    spans: dict[str, list[dict[str, Any]]] = {}
    for event in execution.events:
        spans.setdefault(event["span_id"], []).append(event)
    return spans


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


@asynccontextmanager
async def api_client(settings: Settings, store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, store=store, bus=MemoryBus())
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://spanline.test") as client:
            yield client
