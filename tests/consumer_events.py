"""Generated executions for the consumer's tests and bench: nested workflows, fan-out, failures and
model usage, as the Vellum events of SPEC §1, plus the totals a correct consumer must end with."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

MODELS = (("gpt-4o-mini", "openai"), ("claude-haiku-4", "anthropic"), ("llama-3-8b", "local"))


@dataclass
class Execution:
    execution_id: str
    org: str | None  # None: no org header (the default organization)
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str = "FULFILLED"

    def payloads(self) -> list[bytes]:
        return [msgspec.json.encode(event) for event in self.events]


class _Clock:
    def __init__(self, start: datetime, rng: random.Random) -> None:
        self._now = start
        self._rng = rng

    def tick(self) -> str:
        self._now += timedelta(microseconds=self._rng.randint(1, 40_000))
        return self._now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _definition(name: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "module": ["gen", name.lower()]}


def generate_execution(
    rng: random.Random, *, start: datetime | None = None, org: str | None = None, max_depth: int = 2
) -> Execution:
    clock = _Clock(start or datetime(2026, 11, 2, 9, 30, tzinfo=UTC), rng)
    root_span = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    trace_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    execution = Execution(root_span, org)
    workflow = _definition(f"Workflow{rng.randint(0, 3)}")

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def emit(name: str, span_id: str, parent: dict[str, Any] | None, body: dict[str, Any]) -> None:
        execution.events.append(
            {"id": new_id(), "timestamp": clock.tick(), "api_version": "2024-10-25", "trace_id": trace_id,
             "span_id": span_id, "parent": parent, "links": None, "name": name, "body": body}
        )  # fmt: skip

    def run_workflow(span_id: str, definition: dict[str, Any], parent: dict[str, Any] | None, depth: int) -> bool:
        emit(
            "workflow.execution.initiated",
            span_id,
            parent,
            {"workflow_definition": definition, "inputs": {"q": 1}},
        )
        context = {"type": "WORKFLOW", "span_id": span_id, "workflow_definition": definition, "parent": parent}
        ok = True
        for index in range(rng.randint(1, 4)):
            ok = run_node(context, definition, index, depth) and ok
            if not ok:
                break
        if ok:
            body = {"workflow_definition": definition, "outputs": {"answer": f"done-{span_id[:4]}"}}
            emit("workflow.execution.fulfilled", span_id, parent, body)
        else:
            error = {"message": "a node failed", "code": "NODE_EXECUTION"}
            emit("workflow.execution.rejected", span_id, parent, {"workflow_definition": definition, "error": error})
        return ok

    def run_node(context: dict[str, Any], workflow_def: dict[str, Any], index: int, depth: int) -> bool:
        span_id = new_id()
        node = _definition(f"{workflow_def['name']}Node{index}")
        emit("node.execution.initiated", span_id, context, {"node_definition": node, "inputs": {"i": index}})
        for _ in range(rng.randint(0, 2)):
            body = {"node_definition": node, "output": {"name": "text", "delta": "x"}}
            emit("node.execution.streaming", span_id, context, body)
        if rng.random() < 0.2:
            body = {"node_definition": node, "message": "hello", "severity": "INFO"}
            emit("node.execution.log", span_id, context, body)
        ok = True
        if depth < max_depth and rng.random() < 0.3:
            node_context = {
                "type": "WORKFLOW_NODE",
                "span_id": span_id,
                "node_definition": node,
                "parent": context,
            }
            ok = run_workflow(new_id(), _definition(f"Sub{depth}"), node_context, depth + 1)
        usage = _usage(rng) if rng.random() < 0.6 else None
        if ok and rng.random() < 0.1:
            ok = False
        extra = {"usage_result": usage} if usage else {}
        if ok:
            emit(
                "node.execution.fulfilled",
                span_id,
                context,
                {"node_definition": node, "outputs": {"o": index}, **extra},
            )
        else:
            error = {"message": "boom", "code": "NODE_EXECUTION"}
            emit("node.execution.rejected", span_id, context, {"node_definition": node, "error": error, **extra})
        return ok

    execution.status = "FULFILLED" if run_workflow(root_span, workflow, None, 0) else "REJECTED"
    return execution


def _usage(rng: random.Random) -> dict[str, Any]:
    calls = rng.randint(1, 2)
    usage = []
    for _ in range(calls):
        model, provider = rng.choice(MODELS)
        counts = {
            "input_token_count": rng.randint(1, 2000), "output_token_count": rng.randint(1, 500),
            "cache_read_input_tokens": rng.randint(0, 300), "cache_creation_input_tokens": rng.randint(0, 50),
            "compute_nanos": rng.randint(10**8, 3 * 10**9),
        }  # fmt: skip
        usage.append({"ml_model_name": model, "provider": provider, "ml_model_usage": counts})
    costs = [{"value": round(rng.uniform(0.00001, 0.01), 6), "unit": "USD"} for _ in range(calls)]
    return {"usage": usage, "cost": costs}


def expected_totals(executions: list[Execution]) -> dict[str, Any]:
    """What `spanline totals` must print for these executions (each event counted once)."""
    events = [event for execution in executions for event in execution.events]
    spans = {(execution.org, event["span_id"]) for execution in executions for event in execution.events}
    input_tokens = output_tokens = calls = 0
    cost = Decimal(0)
    for event in events:
        usage_result = event["body"].get("usage_result")
        if not usage_result:
            continue
        for call in usage_result["usage"]:
            input_tokens += call["ml_model_usage"]["input_token_count"]
            output_tokens += call["ml_model_usage"]["output_token_count"]
            calls += 1
        cost += sum((Decimal(repr(c["value"])) for c in usage_result["cost"]), Decimal(0))
    statuses = Counter(execution.status for execution in executions)
    return {
        "events": len(events),
        "executions": len(executions),
        "spans": len(spans),
        "exec_spans": len(spans),
        "exec_input_tokens": input_tokens,
        "exec_output_tokens": output_tokens,
        "exec_cost_usd": cost,
        "exec_status": [[status, statuses[status]] for status in sorted(statuses)],
        "usage_calls": calls,
        "rollup_calls": calls,
        "rollup_input_tokens": input_tokens,
        "rollup_output_tokens": output_tokens,
        "rollup_cost_usd": cost,
    }


def normalise_totals(totals: dict[str, Any]) -> dict[str, Any]:
    """Totals (read back as JSON, or expected) with decimals in one canonical form."""
    return {
        key: Decimal(str(value)).normalize() if key.endswith("cost_usd") else value for key, value in totals.items()
    }
