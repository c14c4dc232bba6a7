"""OTLP/HTTP trace bodies (protobuf or JSON) ⇄ opentelemetry-proto messages.

OTLP's JSON encoding differs from protobuf's canonical JSON in one way that matters here: trace and span
ids are hex strings, not base64 (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding), so
they are rewritten to base64 before `json_format.ParseDict`. Unknown fields are ignored, as the spec asks.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from fastapi import HTTPException, status
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_type(content_type: str | None) -> str:
    """The request's media type, or 415 when it is neither OTLP encoding."""
    value = (content_type or "").split(";", 1)[0].strip().lower()
    if value not in (PROTOBUF, JSON):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"unsupported Content-Type {value or 'none'!r}: send {PROTOBUF} or {JSON}",
        )
    return value


def _hex_ids_to_base64(node: Any) -> None:
    """In place: every id field of spans, span links and their nesting, hex → base64."""
    if isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise ValueError(f"{key} {value!r} is not hex") from exc
            elif key != "attributes":  # attribute values are data, not ids
                _hex_ids_to_base64(value)


def decode_request(body: bytes, kind: str) -> ExportTraceServiceRequest:
    """The export request, or 400 saying why the body does not decode."""
    request = ExportTraceServiceRequest()
    try:
        if kind == PROTOBUF:
            request.ParseFromString(body)
        else:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("the body is not a JSON object")
            _hex_ids_to_base64(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (DecodeError, json_format.ParseError, ValueError, binascii.Error, RecursionError) as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"undecodable OTLP {kind} body: {exc}") from exc
    return request


def encode_response(response: ExportTraceServiceResponse, kind: str) -> bytes:
    if kind == PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()
