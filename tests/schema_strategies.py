"""Hypothesis strategies that generate event documents from the published JSON Schemas (`schemas/events/`),
extremes included: integers and floats far beyond what the store holds, any year 0001-9999, any text (NUL
included), nesting of any depth where the schema allows any value.

The schemas use a small part of JSON Schema (type, properties, required, anyOf, enum, items, minimum,
format uuid/date-time, pattern, $ref); this reads exactly that part and fails on anything else, so a schema
change cannot silently narrow what is generated. (hypothesis-jsonschema was tried: it cannot follow the
recursive ParentContext reference and does not run on current Hypothesis.) Recursive references are
followed to a bounded depth, then end in null (each one sits in an anyOf with null).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

from hypothesis import strategies as st

SCHEMAS_DIR: Final = Path(__file__).resolve().parents[1] / "schemas" / "events"
RECURSION_DEPTH: Final = 2
_KNOWN_KEYS: Final = frozenset(
    {"type", "properties", "required", "anyOf", "enum", "items", "minimum", "format", "pattern", "$ref", "default",
     "title", "discriminator", "$defs", "$schema", "$id"}
)  # fmt: skip

# Values at and beyond the store's limits (consumer/storable.py), mixed into what the schema allows.
EXTREME_INTEGERS: Final = (0, 1, 2**31, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**12, 10**12 + 1,
                           10**15, 10**15 + 1, 10**30)  # fmt: skip
EXTREME_FLOATS: Final = (0.0, -0.0, 5e-324, 1e-20, 0.12345678901234567, 1e12, 1e12 + 1, -1e12 - 1, 1e26, 1e30,
                         -1e30, 1.7976931348623157e308)  # fmt: skip

JSON_SCALARS: Final = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
)
JSON_VALUES: Final = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def deep_value(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


# Mostly ordinary values; one in 30 a nesting up to 400 deep (the store's limit is 128: consumer/storable.py).
ANY_JSON: Final = st.integers(0, 29).flatmap(lambda k: st.integers(1, 400).map(deep_value) if k == 0 else JSON_VALUES)


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 text over the whole range a datetime can have, with offsets and 0-9 fraction digits."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    offset_minutes = draw(st.sampled_from([0, 0, 0, 60, -300, 330, 14 * 60, -12 * 60]))
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    digits = draw(st.integers(0, 9))
    if digits:
        text += "." + "".join(str(draw(st.integers(0, 9))) for _ in range(digits))
    if offset_minutes == 0:
        return text + draw(st.sampled_from(["Z", "z", "+00:00"]))
    sign = "+" if offset_minutes > 0 else "-"
    return text + f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"


def near_now() -> st.SearchStrategy[str]:
    return st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
        lambda moment: moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    )


def strategy_for(node: dict[str, Any], defs: dict[str, Any], active: dict[str, int]) -> st.SearchStrategy[Any]:
    unknown = set(node) - _KNOWN_KEYS
    if unknown:
        raise ValueError(f"schema keywords this generator does not read: {sorted(unknown)}")
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        if active.get(name, 0) > RECURSION_DEPTH:
            return st.nothing()  # the anyOf around it still offers null
        return st.deferred(lambda: strategy_for(defs[name], defs, {**active, name: active.get(name, 0) + 1}))
    if "anyOf" in node:
        return st.one_of([strategy_for(option, defs, active) for option in node["anyOf"]])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind is None:
        return ANY_JSON
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low = node.get("minimum")
        extremes = [value for value in EXTREME_INTEGERS if low is None or value >= low]
        return st.integers(min_value=low, max_value=None) | st.sampled_from(extremes)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EXTREME_FLOATS)
    if kind == "string":
        if node.get("format") == "uuid":
            return st.uuids().map(str)
        if node.get("format") == "date-time":
            return near_now() | timestamps()
        return st.text(max_size=16) | st.sampled_from(["\x00", "a\x00b", "é" * 3, "\U0001f600"])
    if kind == "array":
        items = strategy_for(node["items"], defs, active) if "items" in node else ANY_JSON
        # Past the recursion cap the items may be nothing(): hypothesis refuses a non-empty list of nothing.
        return st.just([]) if items.is_empty else st.lists(items, max_size=3)
    if kind == "object":
        properties = node.get("properties")
        if properties is None:
            return st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=3)
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {key: strategy_for(value, defs, active) for key, value in properties.items() if key in required},
            optional={
                key: strategy_for(value, defs, active) for key, value in properties.items() if key not in required
            },
        )
    raise ValueError(f"schema type this generator does not read: {kind!r}")


@cache
def schema_events(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Documents valid against `schemas/events/<name>.json` as far as its types go (the timestamp also spans
    years and offsets the store refuses)."""
    schema = json.loads((SCHEMAS_DIR / f"{name}.json").read_text())
    defs = schema.get("$defs", {})
    return strategy_for({"$ref": schema["$ref"]}, defs, {})


def event_names() -> list[str]:
    return sorted(path.stem for path in SCHEMAS_DIR.glob("*.json") if path.stem != "envelope")
