"""Kafka message → accepted event (with its organization and root execution) or a DLQ reason.

Each message is decoded and validated exactly once here (msgspec, one C pass), and its values checked
against what the store can hold (`storable`); later stages only read the typed event, and every event
they see can be written.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from spanline.bus.interface import ORG_HEADER, BusMessage, org_of
from spanline.consumer.storable import too_deep, unstorable
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import root_execution_id
from spanline.events.models import Event


@dataclass(frozen=True, slots=True)
class AcceptedEvent:
    event: Event
    org: str
    execution_id: UUID
    partition: int
    offset: int
    payload: bytes
    message: BusMessage  # as received, for the DLQ should the store refuse the event after all


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    message: BusMessage
    reason: str
    error: str


def decode_message(message: BusMessage, *, default_org: str, max_bytes: int) -> AcceptedEvent | RejectedMessage:
    org = org_of(message, default_org)
    if org is None:
        return RejectedMessage(message, "bad_org", f"the {ORG_HEADER} header is not a non-empty UTF-8 name")
    if len(message.value) <= max_bytes and (deep := too_deep(message.value)) is not None:
        return RejectedMessage(message, deep.reason, deep.detail)
    try:
        event = decode_event(message.value, max_bytes)
    except EventDecodeError as exc:
        return RejectedMessage(message, exc.reason, exc.message)
    problem = unstorable(event)
    if problem is not None:
        return RejectedMessage(message, problem.reason, problem.detail)
    execution_id = root_execution_id(event)
    if execution_id is None:
        return RejectedMessage(message, "no_root", "a node event with no WORKFLOW context above it")
    return AcceptedEvent(event, org, execution_id, message.partition, message.offset, message.value, message)
