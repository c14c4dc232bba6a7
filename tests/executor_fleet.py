"""Executor workers as separate OS processes (`python -m spanline.cli executor`) on a real broker, so a
test can SIGKILL one; run requests published straight to `spanline.executions`; the events read back
from `spanline.events` with what the consumer's dedup (one row per event id) would keep."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, BusConsumer, OutgoingMessage
from spanline.bus.kafka import KafkaBus
from spanline.core.config import Settings
from spanline.events.codec import decode_event
from spanline.events.execution_request import ExecutionRequest, WorkflowSnapshot, encode_request
from spanline.events.lineage import root_execution_id
from spanline.events.models import TERMINAL_NODE_EVENT_NAMES, TERMINAL_WORKFLOW_EVENT_NAMES, Event, event_name

# Two model calls in parallel between two templates: five spans, streamed deltas, usage on two of them.
FAN_OUT: dict[str, Any] = {
    "name": "fan_out",
    "inputs": [{"name": "topic", "type": "STRING"}],
    "nodes": [
        {"id": "prompt", "kind": "template", "config": {"template": "Write about {{ topic }}"},
         "inputs": {"topic": {"workflow_input": "topic"}}},
        {"id": "left", "kind": "model", "config": {"model": "gpt-4o-mini", "prompt": "left: {{ p }}"},
         "inputs": {"p": {"node": "prompt"}}},
        {"id": "right", "kind": "model", "config": {"model": "gpt-4o-mini", "prompt": "right: {{ p }}"},
         "inputs": {"p": {"node": "prompt"}}},
        {"id": "join", "kind": "template", "config": {"template": "{{ l }} | {{ r }}"},
         "inputs": {"l": {"node": "left"}, "r": {"node": "right"}}},
    ],
    "outputs": [{"name": "text", "from": {"node": "join"}}],
}  # fmt: skip


def fan_out_request(execution_id: UUID, topic: str, org: str = "acme") -> ExecutionRequest:
    snapshot = WorkflowSnapshot(uuid.uuid5(uuid.NAMESPACE_URL, "fan_out"), 1, FAN_OUT)
    return ExecutionRequest(
        execution_id=execution_id, org=org, workflow=snapshot, inputs={"topic": topic}, requested_at=datetime.now(UTC)
    )


async def publish_requests(bus: KafkaBus, topic: str, requests: Iterable[ExecutionRequest]) -> None:
    producer = bus.producer()
    await producer.start()
    try:
        messages = [
            OutgoingMessage(
                encode_request(r), key=str(r.execution_id).encode(), headers=((ORG_HEADER, r.org.encode()),)
            )
            for r in requests
        ]
        await producer.send_acked(topic, messages)
    finally:
        await producer.stop()


@dataclass
class ExecutorFleet:
    settings: Settings
    env_extra: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    killed: int = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SPANLINE_KAFKA_BOOTSTRAP": str(self.settings.kafka_bootstrap),
            "SPANLINE_EVENTS_TOPIC": self.settings.events_topic,
            "SPANLINE_EXECUTIONS_TOPIC": self.settings.executions_topic,
            "SPANLINE_EXECUTOR_GROUP": self.settings.executor_group,
            "SPANLINE_TOPIC_PARTITIONS": str(self.settings.topic_partitions),
            "SPANLINE_LOG_LEVEL": "WARNING",
            **self.env_extra,
        }
        process = subprocess.Popen([sys.executable, "-m", "spanline.cli", "executor"], env=env)
        self.processes.append(process)
        return process

    def kill_one(self) -> None:
        """SIGKILL the oldest live worker (it cannot say anything) and start a replacement."""
        victim = next(p for p in self.processes if p.poll() is None)
        victim.kill()
        victim.wait()
        self.killed += 1
        self.spawn()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class RunLog:
    """Every event read from the topic, per execution, kept once per event id (as the store keeps
    them), plus how many copies arrived beyond the first."""

    events: dict[UUID, dict[UUID, Event]] = field(default_factory=dict)
    copies: int = 0
    ended: set[UUID] = field(default_factory=set)

    def add(self, event: Event) -> None:
        root = root_execution_id(event)
        assert root is not None
        kept = self.events.setdefault(root, {})
        if event.id in kept:
            self.copies += 1
            return
        kept[event.id] = event
        if event.span_id == root and event_name(event) in TERMINAL_WORKFLOW_EVENT_NAMES:
            self.ended.add(root)

    async def read(self, reader: BusConsumer, timeout_ms: int = 200) -> int:
        batch = await reader.getmany(max_records=5000, timeout_ms=timeout_ms)
        for message in batch:
            self.add(decode_event(message.value))
        return len(batch)


@dataclass(frozen=True)
class RunShape:
    """What a run's stored events say: per node name, its initiated/terminal event counts; the tokens."""

    spans: dict[str, tuple[int, int]]
    events: int
    tokens: int


def run_shape(events: Iterable[Event]) -> RunShape:
    per_span: dict[UUID, list[Event]] = {}
    for event in events:
        per_span.setdefault(event.span_id, []).append(event)
    spans: dict[str, tuple[int, int]] = {}
    tokens = 0
    count = 0
    for span_events in per_span.values():
        names = [event_name(e) for e in span_events]
        count += len(span_events)
        definition = getattr(span_events[0].body, "node_definition", None) or span_events[0].body.workflow_definition
        initiated = sum(n.endswith(".initiated") for n in names)
        terminal = sum(n in TERMINAL_NODE_EVENT_NAMES | TERMINAL_WORKFLOW_EVENT_NAMES for n in names)
        spans[definition.name] = (initiated, terminal)
        for event in span_events:
            usage = getattr(event.body, "usage_result", None)
            for model_usage in usage.usage if usage else []:
                counts = model_usage.ml_model_usage
                tokens += int(counts.input_token_count or 0) + int(counts.output_token_count or 0)
    return RunShape(spans, count, tokens)
