"""The event contract in code: the examples decode, encoding round-trips, bad bytes say why."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import orjson
import pytest

from spanline.events.codec import EventDecodeError, decode_event, encode_event
from spanline.events.lineage import parent_span_id, root_execution_id
from spanline.events.models import (
    EVENT_NAMES,
    NodeExecutionFulfilledEvent,
    ParentContext,
    WorkflowExecutionInitiatedEvent,
    event_name,
)
from tests.conftest import EXAMPLES_DIR

SPEC_EVENT_NAMES = {
    *(
        f"workflow.execution.{kind}"
        for kind in ("initiated", "streaming", "fulfilled", "rejected", "paused", "resumed", "snapshotted")
    ),
    *(
        f"node.execution.{kind}"
        for kind in ("initiated", "streaming", "fulfilled", "rejected", "paused", "resumed", "log")
    ),
}


def example_lines(name: str) -> list[bytes]:
    return [line for line in (EXAMPLES_DIR / name).read_bytes().splitlines() if line.strip()]


def test_every_spec_event_name_has_a_model() -> None:
    assert set(EVENT_NAMES) == SPEC_EVENT_NAMES


@pytest.mark.parametrize("example", ["research-nested.ndjson", "failing.ndjson"])
def test_examples_decode_and_round_trip(example: str) -> None:
    for line in example_lines(example):
        event = decode_event(line)
        assert event_name(event) == orjson.loads(line)["name"]
        # Re-encoding keeps every field the example had (and the same values).
        assert orjson.loads(encode_event(event)) == orjson.loads(line)
        assert decode_event(encode_event(event)) == event


def test_usage_result_is_typed() -> None:
    plan = next(
        event
        for event in map(decode_event, example_lines("research-nested.ndjson"))
        if isinstance(event, NodeExecutionFulfilledEvent) and event.body.usage_result is not None
    )
    assert plan.body.usage_result is not None
    usage = plan.body.usage_result.usage[0]
    assert (usage.ml_model_name, usage.provider) == ("gpt-4o-mini", "openai")
    assert usage.ml_model_usage.input_token_count == 812
    assert plan.body.usage_result.cost is not None and plan.body.usage_result.cost[0].value == 0.000141


def test_root_execution_of_every_example_event_is_the_top_level_workflow_span() -> None:
    events = [decode_event(line) for line in example_lines("research-nested.ndjson")]
    top = events[0]
    assert isinstance(top, WorkflowExecutionInitiatedEvent) and top.parent is None
    assert {root_execution_id(event) for event in events} == {top.span_id}
    # The subworkflow's own events have a WORKFLOW_NODE parent; their root is still the top span.
    nested = [e for e in events if e.parent is not None and e.parent.type == "WORKFLOW_NODE"]
    assert nested and all(root_execution_id(e) == top.span_id for e in nested)
    assert all(parent_span_id(e) == e.parent.span_id for e in nested if e.parent is not None)


def test_node_event_without_a_workflow_has_no_root() -> None:
    line = next(line for line in example_lines("failing.ndjson") if b'"node.execution.initiated"' in line)
    document = orjson.loads(line)
    document["parent"] = {"type": "API_REQUEST", "span_id": "00000000-0000-4000-8000-000000000001", "parent": None}
    assert root_execution_id(decode_event(orjson.dumps(document))) is None


def test_unknown_parent_types_are_kept() -> None:
    line = example_lines("failing.ndjson")[1]
    document = orjson.loads(line)
    document["parent"]["parent"] = {
        "type": "SOMETHING_NEW",
        "span_id": "00000000-0000-4000-8000-000000000002",
        "parent": None,
    }
    event = decode_event(orjson.dumps(document))
    assert event.parent is not None and isinstance(event.parent.parent, ParentContext)
    assert event.parent.parent.type == "SOMETHING_NEW"
    assert orjson.loads(encode_event(event))["parent"]["parent"]["type"] == "SOMETHING_NEW"


def test_newer_api_version_and_unknown_error_codes_are_accepted() -> None:
    line = example_lines("failing.ndjson")[-1]
    document = orjson.loads(line)
    document["api_version"] = "2025-07-30"
    document["body"]["error"]["code"] = "SOME_FUTURE_CODE"
    event = decode_event(orjson.dumps(document))
    assert orjson.loads(encode_event(event))["body"]["error"]["code"] == "SOME_FUTURE_CODE"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: b"{not json", "not_json"),
        (lambda d: orjson.dumps({**d, "name": "workflow.execution.exploded"}), "unknown_name"),
        (lambda d: orjson.dumps({k: v for k, v in d.items() if k != "span_id"}), "schema"),
        (lambda d: orjson.dumps({**d, "id": "not-a-uuid"}), "schema"),
        (lambda d: orjson.dumps({**d, "timestamp": "2026-01-15T09:30:00"}), "schema"),
        (lambda d: orjson.dumps({**d, "body": {}}), "schema"),
        (lambda d: orjson.dumps({**d, "body": {**d["body"], "inputs": "x" * 5000}}), "too_large"),
    ],
)
def test_bad_events_are_refused_with_a_reason(mutate: object, reason: str) -> None:
    document = orjson.loads(example_lines("failing.ndjson")[0])
    data = mutate(document)  # type: ignore[operator]
    with pytest.raises(EventDecodeError) as refused:
        decode_event(data, max_bytes=4096)
    assert refused.value.reason == reason


def test_ids_decode_as_uuids() -> None:
    event = decode_event(example_lines("failing.ndjson")[0])
    assert isinstance(event.id, UUID) and isinstance(event.trace_id, UUID)


def test_examples_dir_is_a_copy_of_the_shared_examples() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "examples" / "events"
    if not shared.is_dir():  # users of the project have only the copy
        return
    for path in shared.glob("*.ndjson"):
        assert (EXAMPLES_DIR / path.name).read_bytes() == path.read_bytes()
