"""Where an event sits in its execution tree: the root execution it belongs to, its parent span.

`decode_route` reads only what routing needs (id, span_id, name, the parent chain) and skips the rest:
about half the cost of the full typed decode, for readers that route many events and validate few (the
API's live hub). It does not validate the event; `spanline.events.codec.decode_event` does.
"""

from __future__ import annotations

from typing import Final, Protocol
from uuid import UUID

import msgspec
from msgspec import UnsetType

from spanline.events.models import WORKFLOW_EVENT_TYPES, Event

SPAN_PARENT_TYPES: Final = frozenset({"WORKFLOW", "WORKFLOW_NODE"})


class _Context(Protocol):
    """A parent chain link, typed (ParentContext) or light (RouteContext)."""

    @property
    def type(self) -> str: ...

    @property
    def span_id(self) -> UUID: ...

    @property
    def parent(self) -> _Context | UnsetType | None: ...


class RouteContext(msgspec.Struct):
    """The fields of a ParentContext that routing reads; the others are skipped."""

    type: str
    span_id: UUID
    parent: RouteContext | None = None


class EventRoute(msgspec.Struct):
    """The fields of an event that routing reads; every one of them is required as in the full event."""

    id: UUID
    span_id: UUID
    name: str
    parent: RouteContext | None = None


_route_decoder: Final = msgspec.json.Decoder(EventRoute)


def decode_route(data: bytes | bytearray | memoryview) -> EventRoute | None:
    """The routing fields of an event, or None when even those are missing or malformed (then the full
    decode fails too: each of these constraints is one of the full event's)."""
    try:
        return _route_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _outermost_workflow(context: _Context | None) -> UUID | None:
    root: UUID | None = None
    while context is not None:
        if context.type == "WORKFLOW":
            root = context.span_id
        context = context.parent or None  # UNSET (left out) is null
    return root


def root_execution_id(event: Event) -> UUID | None:
    """The span_id of the outermost WORKFLOW context above the event, or the event's own span when it
    is a top-level workflow event. None for a node event with no WORKFLOW above it (not routable)."""
    root = _outermost_workflow(event.parent)
    if root is not None:
        return root
    if isinstance(event, WORKFLOW_EVENT_TYPES):
        return event.span_id
    return None


def route_root_execution_id(route: EventRoute) -> UUID | None:
    """`root_execution_id` from the routing fields alone (the same answer for a valid event)."""
    root = _outermost_workflow(route.parent)
    if root is not None:
        return root
    if route.name.startswith("workflow."):
        return route.span_id
    return None


def parent_span_id(event: Event) -> UUID | None:
    """The span directly above this event's span inside its trace (a node's workflow, a subworkflow's
    node). Other parent types (API_REQUEST, WORKFLOW_RELEASE_TAG, ...) describe a trigger, not a span."""
    parent = event.parent
    if parent is not None and parent.type in SPAN_PARENT_TYPES:
        return parent.span_id
    return None
