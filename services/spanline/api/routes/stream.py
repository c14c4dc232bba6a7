"""`GET /v1/workflow-executions/{execution_id}/events`: an execution's events over SSE, stored history
first, then live, joined without gap or duplicate, until its terminal event.

The `id:` of each message is the event's Kafka offset: an execution's events all live in one partition
(they are keyed by the root execution), so offsets are a per-execution monotonic sequence that both the
stored history (ClickHouse keeps each event's offset) and the live feed carry. Joining is then exact:
subscribe to the live feed first (it hands over its recent buffer), read the history after the resume
point, send it, then send live events past the last offset sent. An event produced twice (same id) is
sent once when its copy comes within the last 10,000 events of the stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Final
from uuid import UUID

import orjson
from fastapi import APIRouter, Header, HTTPException, Query, status
from sse_starlette import EventSourceResponse

from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.live import Subscription
from spanline.api.state import AppState
from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES, event_name
from spanline.store import execution_reads as reads

router = APIRouter(prefix="/v1", tags=["stream"])

EVENT_TYPE_PREFIXES: Final = {"WORKFLOW": "workflow.", "NODE": "node."}
KEEP_ALIVE_S: Final = 15


def _prefixes(event_types: str | None) -> tuple[str, ...]:
    if not event_types:
        return tuple(EVENT_TYPE_PREFIXES.values())
    names = [name.strip().upper() for name in event_types.split(",") if name.strip()]
    unknown = [name for name in names if name not in EVENT_TYPE_PREFIXES]
    if unknown:
        raise HTTPException(
            422,
            f"unknown event_types {unknown}; use {', '.join(EVENT_TYPE_PREFIXES)}",
        )
    return tuple(EVENT_TYPE_PREFIXES[name] for name in names)


def _resume_point(header: str | None, query: int | None) -> int:
    if query is not None:
        return query
    if header is None or not header.strip():
        return -1
    try:
        return int(header)
    except ValueError as exc:
        raise HTTPException(422, "Last-Event-ID must be an id this API sent") from exc


class _RecentIds:
    """The last `capacity` event ids sent: a copy produced twice follows its original closely, so a bounded
    window catches it while a long stream's memory stays flat."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._capacity = capacity

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())


class _Joiner:
    """Sends each event once, in offset order, from the history and then the live feed."""

    def __init__(self, execution_id: UUID, after: int, prefixes: tuple[str, ...]) -> None:
        self.execution_id = execution_id
        self.last_offset = after
        self.prefixes = prefixes
        self.sent_ids = _RecentIds()
        self.finished = False

    def take(self, offset: int, name: str, payload: str, event_id: str, span_id: str) -> dict[str, str] | None:
        if offset <= self.last_offset or event_id in self.sent_ids:
            return None
        self.last_offset = offset
        self.sent_ids.add(event_id)
        if span_id == str(self.execution_id) and name in TERMINAL_WORKFLOW_EVENT_NAMES:
            self.finished = True
        if not name.startswith(self.prefixes):
            return None
        return {"id": str(offset), "event": name, "data": payload}


async def _stream(
    state: AppState, org: str, execution_id: UUID, subscription: Subscription, joiner: _Joiner
) -> AsyncIterator[dict[str, str]]:
    for stored in await reads.history(state.store, org, execution_id, joiner.last_offset):
        document = orjson.loads(stored.payload)
        message = joiner.take(stored.offset, stored.name, stored.payload, document["id"], document["span_id"])
        if message is not None:
            yield message
        if joiner.finished:
            return
    while not joiner.finished:
        item = await subscription.next()
        if item is None:  # the feed dropped this client (too slow) or is shutting down
            return
        event = item.event
        message = joiner.take(
            item.message.offset,
            event_name(event),
            item.message.value.decode(),
            str(event.id),
            str(event.span_id),
        )
        if message is not None:
            yield message


@router.get(
    "/workflow-executions/{execution_id}/events",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "another organization's"}},
)
async def execution_events(
    execution_id: UUID,
    org: OrgDep,
    state: AppStateDep,
    event_types: Annotated[str | None, Query(description="WORKFLOW, NODE or both, comma-separated")] = None,
    last_event_id: Annotated[int | None, Query(ge=-1, description="resume after this id")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Every stored event of the execution in order, then live ones, until its terminal event; waits for
    an execution that has not started; resumes after Last-Event-ID with no gap and no duplicate."""
    prefixes = _prefixes(event_types)
    after = _resume_point(last_event_id_header, last_event_id)
    owner = await reads.owner(state.store, execution_id)
    if owner is not None and owner != org:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {execution_id} not found")
    scope = state.hub.subscribe(execution_id, org)
    subscription = scope.__enter__()  # before reading history, so nothing falls between the two

    async def messages() -> AsyncIterator[dict[str, str]]:
        try:
            async for message in _stream(
                state, org, execution_id, subscription, _Joiner(execution_id, after, prefixes)
            ):
                yield message
        finally:
            scope.__exit__(None, None, None)

    return EventSourceResponse(
        messages(), ping=KEEP_ALIVE_S, headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"}
    )
