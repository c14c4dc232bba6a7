"""The event contract's msgspec Structs used as fields of the API's pydantic models: one definition of
each contract type (in spanline.events), validated, serialized and documented (OpenAPI) from it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, PlainSerializer
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from spanline.core.times import rfc3339
from spanline.events.models import ExecutionError, UsageResult


class _StructSchema:
    """Pydantic schema hooks for one Struct type: values are converted by msgspec, written with
    `msgspec.to_builtins`, and described by msgspec's JSON Schema (its $defs inlined)."""

    def __init__(self, struct: type[msgspec.Struct]) -> None:
        self._struct = struct

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        struct = self._struct

        def validate(value: Any) -> Any:
            return value if isinstance(value, struct) else msgspec.convert(value, struct)

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(msgspec.to_builtins)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        document = msgspec.json.schema(self._struct)
        definitions: dict[str, Any] = document.pop("$defs", {})
        inlined = _inline(document, definitions)
        assert isinstance(inlined, dict)
        return inlined


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    """Replace each `#/$defs/X` reference by X itself (the contract types used here are not recursive)."""
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


# The contract types the API's responses carry.
ExecutionErrorField = Annotated[ExecutionError, _StructSchema(ExecutionError)]
UsageResultField = Annotated[UsageResult, _StructSchema(UsageResult)]

# Every moment in a response: written by the one formatter, RFC 3339 UTC with `Z` (SPEC §4).
UtcTimestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
