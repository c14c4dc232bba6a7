"""schemas/events/ and the models agree, in both directions:
- every event the models can produce validates against its schema and the envelope schema;
- every document the schemas accept decodes (checked on random mutations of valid events).
The decoder is allowed to be more lenient than the schema (it reads UUIDs without dashes), never stricter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from spanline.events.codec import EventDecodeError, decode_event, encode_event
from spanline.events.json_schema import ENVELOPE_FILE, build_event_schemas, render
from spanline.events.models import EVENT_NAMES, event_name
from tests.conftest import EXAMPLES_DIR, PROJECT_ROOT
from tests.event_strategies import events

SCHEMAS_DIR = PROJECT_ROOT / "schemas" / "events"


def load_validator(file_name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / file_name).read_text())
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


ENVELOPE = load_validator(ENVELOPE_FILE)
PER_EVENT = {name: load_validator(f"{name}.json") for name in EVENT_NAMES}


def test_committed_schemas_are_what_the_models_generate() -> None:
    generated = build_event_schemas()
    committed = {path.name for path in SCHEMAS_DIR.glob("*.json")}
    assert committed == set(generated), "run `spanline schemas export`"
    for file_name, schema in generated.items():
        assert (SCHEMAS_DIR / file_name).read_text() == render(schema), f"{file_name} is stale"


def test_every_event_name_has_a_schema_file() -> None:
    assert {f"{name}.json" for name in EVENT_NAMES} <= {p.name for p in SCHEMAS_DIR.glob("*.json")}


def test_the_examples_validate() -> None:
    for path in sorted(Path(EXAMPLES_DIR).glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            document = orjson.loads(line)
            ENVELOPE.validate(document)
            PER_EVENT[document["name"]].validate(document)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events())
def test_generated_events_validate_against_the_schemas(event: Any) -> None:
    document = orjson.loads(encode_event(event))
    ENVELOPE.validate(document)
    PER_EVENT[event_name(event)].validate(document)
    # and the schema-valid document decodes back to the same event
    assert decode_event(orjson.dumps(document)) == event


REPLACEMENTS = st.sampled_from(
    [
        None,
        0,
        -1,
        1.5,
        True,
        "",
        "x",
        "not-a-uuid",
        "2026-01-15T09:30:00Z",
        "2026-01-15T09:30:00",
        "2026-01-15T23:59:60Z",
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "0f8fad5bd9cb469fa16570867728950e",
        [],
        {},
        ["x"],
        {"a": 1},
        "WORKFLOW",
        "node.execution.log",
        "2024-10-25",
        "INFO",
    ]
)
DELETE = object()


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


def mutate(document: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    container = document
    for step in path[:-1]:
        container = container[step]
    if replacement is DELETE:
        del container[path[-1]]
    else:
        container[path[-1]] = replacement
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), data=st.data())
def test_schema_valid_mutations_decode(event: Any, data: st.DataObject) -> None:
    document = orjson.loads(encode_event(event))
    path = data.draw(st.sampled_from(paths(document)))
    replacement = data.draw(REPLACEMENTS | st.just(DELETE))
    if replacement is DELETE and isinstance(path[-1], int):
        replacement = None
    mutated = mutate(document, path, replacement)
    schema_valid = ENVELOPE.is_valid(mutated)
    try:
        decode_event(orjson.dumps(mutated))
        decodes = True
    except EventDecodeError:
        decodes = False
    if schema_valid:
        assert decodes, f"schema accepts but the decoder refuses a change at {path}"
        assert PER_EVENT[mutated["name"]].is_valid(mutated)
    if not decodes:
        assert not schema_valid
