"""Vellum's "Create Monitoring Event" (`POST /monitoring/v1/events`), what vellum-ai's `VellumEmitter`
posts: one SPEC §1 event or a list, validated, published to the events topic for the key's organization
and acknowledged by the broker before the answer. Re-posting is harmless: the consumer dedups by event id."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.intake.body import read_body
from spanline.api.intake.events_body import parse_events
from spanline.api.intake.publish import publish_acked

router = APIRouter(prefix="/monitoring/v1", tags=["intake"])


class EventCreateResponse(BaseModel):
    success: bool
    count: int


@router.post(
    "/events",
    response_model=EventCreateResponse,
    responses={
        400: {"description": "an invalid event (its index and reason); nothing of the request was published"},
        413: {"description": "an event over SPANLINE_MAX_EVENT_BYTES or a body over SPANLINE_MAX_REQUEST_BYTES"},
        503: {"description": "the bus did not acknowledge the events"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"type": "object", "description": "one event of SPEC §1"},
                            {"type": "array", "items": {"type": "object"}, "description": "a list of events"},
                        ]
                    }
                }
            },
        }
    },
)
async def create_monitoring_events(request: Request, org: OrgDep, state: AppStateDep) -> EventCreateResponse:
    body = await read_body(request, state.settings.max_request_bytes)
    events = parse_events(body, state.settings.max_event_bytes)
    await publish_acked(state.producer, state.settings.events_topic, org, events)
    return EventCreateResponse(success=True, count=len(events))
