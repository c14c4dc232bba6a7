"""Publish accepted events to the events topic as every producer does (SPEC §2): keyed by the root
execution id, the organization in the `spanline-org` header, answered only once the broker acked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from fastapi import HTTPException, status

from spanline.bus.interface import ORG_HEADER, BusProducer, BusUnavailableError, OutgoingMessage


@dataclass(frozen=True, slots=True)
class IntakeEvent:
    payload: bytes  # the event's JSON as the emitter sent it (the consumer stores these bytes)
    root_execution_id: UUID


async def publish_acked(producer: BusProducer, topic: str, org: str, events: Sequence[IntakeEvent]) -> None:
    """Every event acknowledged by the broker, or a 503 naming why not (resending is safe: event ids)."""
    headers = ((ORG_HEADER, org.encode()),)
    messages = [OutgoingMessage(e.payload, str(e.root_execution_id).encode(), headers) for e in events]
    try:
        await producer.send_acked(topic, messages)
    except BusUnavailableError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"the events were not all acknowledged by the bus: {exc}"
        ) from exc
