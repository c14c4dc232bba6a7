"""Where an event sits in its execution tree: the root execution it belongs to, its parent span."""

from __future__ import annotations

from typing import Final
from uuid import UUID

from spanline.events.models import WORKFLOW_EVENT_TYPES, Event, ParentContext

SPAN_PARENT_TYPES: Final = frozenset({"WORKFLOW", "WORKFLOW_NODE"})


def root_execution_id(event: Event) -> UUID | None:
    """The span_id of the outermost WORKFLOW context above the event, or the event's own span when it
    is a top-level workflow event. None for a node event with no WORKFLOW above it (not routable)."""
    root: UUID | None = None
    context: ParentContext | None = event.parent
    while context is not None:
        if context.type == "WORKFLOW":
            root = context.span_id
        context = context.parent
    if root is not None:
        return root
    if isinstance(event, WORKFLOW_EVENT_TYPES):
        return event.span_id
    return None


def parent_span_id(event: Event) -> UUID | None:
    """The span directly above this event's span inside its trace (a node's workflow, a subworkflow's
    node). Other parent types (API_REQUEST, WORKFLOW_RELEASE_TAG, ...) describe a trigger, not a span."""
    parent = event.parent
    if parent is not None and parent.type in SPAN_PARENT_TYPES:
        return parent.span_id
    return None
