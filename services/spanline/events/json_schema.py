"""JSON Schemas of the event contract, generated from the models so the two cannot drift apart.

`schemas/events/` holds the output of `spanline schemas export`; a test regenerates it and compares,
and further tests check that the schemas and the decoder accept and refuse the same documents.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import msgspec

from spanline.events.models import EVENT_TYPE_BY_NAME, Event

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
ENVELOPE_FILE: Final = "envelope.json"


def _referenced(node: Any, defs: dict[str, Any], seen: set[str]) -> set[str]:
    """Names of the $defs a schema node reaches, transitively."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name not in seen:
                seen.add(name)
                _referenced(defs[name], defs, seen)
        for value in node.values():
            _referenced(value, defs, seen)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, defs, seen)
    return seen


def _document(title: str, schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    used = _referenced(schema, defs, set())
    return {
        "$schema": DRAFT,
        "$id": f"https://spanline.dev/schemas/events/{title}.json",
        "title": title,
        **schema,
        "$defs": {name: defs[name] for name in sorted(used)},
    }


def build_event_schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema document: one per event name, plus the envelope (any event)."""
    names = list(EVENT_TYPE_BY_NAME)
    types = [EVENT_TYPE_BY_NAME[name] for name in names]
    (envelope, *per_event), defs = msgspec.json.schema_components([Event, *types], ref_template="#/$defs/{name}")
    documents = {ENVELOPE_FILE: _document("envelope", envelope, defs)}
    for name, schema in zip(names, per_event, strict=True):
        documents[f"{name}.json"] = _document(name, schema, defs)
    return documents


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_event_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in build_event_schemas().items():
        path = directory / file_name
        path.write_text(render(schema))
        written.append(path)
    return written
