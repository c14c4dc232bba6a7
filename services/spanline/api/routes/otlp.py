"""OTLP/HTTP trace export (`POST /v1/traces`): an OpenTelemetry app's spans become SPEC §1 events on the
events topic (api/intake/otlp_translate.py), acknowledged by the broker before the answer.

Per the OTLP/HTTP spec: protobuf (`application/x-protobuf`) or JSON (`application/json`), optionally
gzip; the answer is an ExportTraceServiceResponse in the request's encoding, with `partial_success`
counting the spans that were refused (and why); an undecodable body is 400, another media type 415.
The key travels in the exporter's headers (X-API-KEY or Authorization: Bearer) like every request.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.intake.body import read_body
from spanline.api.intake.otlp_decode import decode_request, encode_response, media_type
from spanline.api.intake.otlp_translate import translate
from spanline.api.intake.publish import IntakeEvent, publish_acked
from spanline.events.codec import encode_event
from spanline.executor.pricing import PriceTable

router = APIRouter(tags=["intake"])


@lru_cache(maxsize=4)
def _prices(path: Path | None) -> PriceTable:
    return PriceTable.load(path)


@router.post(
    "/v1/traces",
    response_class=Response,
    responses={
        200: {"description": "ExportTraceServiceResponse (protobuf or JSON, as sent)"},
        400: {"description": "the body does not decode as an OTLP export request"},
        413: {"description": "a body over SPANLINE_MAX_REQUEST_BYTES"},
        415: {"description": "neither application/x-protobuf nor application/json"},
        503: {"description": "the bus did not acknowledge the events"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    },
)
async def export_traces(request: Request, org: OrgDep, state: AppStateDep) -> Response:
    kind = media_type(request.headers.get("content-type"))
    body = await read_body(request, state.settings.max_request_bytes)
    translation = translate(decode_request(body, kind), _prices(state.settings.price_table))
    events = [IntakeEvent(encode_event(event), root) for root, event in translation.events]
    await publish_acked(state.producer, state.settings.events_topic, org, events)
    answer = ExportTraceServiceResponse()
    if translation.rejected_spans:
        answer.partial_success.rejected_spans = translation.rejected_spans
        answer.partial_success.error_message = "; ".join(translation.problems[:10])
    return Response(encode_response(answer, kind), media_type=kind)
