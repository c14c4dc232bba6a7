"""`GET /v1/workflow-executions/{execution_id}/events`: an execution's events over SSE, stored history
first, then live, joined without gap or duplicate, until its terminal event.

The `id:` of each message is the event's Kafka offset: an execution's events all live in one partition
(they are keyed by the root execution), so offsets are a per-execution monotonic sequence that both the
stored history (ClickHouse keeps each event's offset) and the live feed carry. Joining is then exact:
subscribe to the live feed first (it hands over its recent buffer), read the history after the resume
point, send it, then send live events past the last offset sent. The history is every stored event,
also those stored after the terminal one (emitters may be out of order, SPEC §4), read from the store
in pages of `HISTORY_PAGE` events; an execution whose terminal event is stored is finished: its stream
closes after the history (a resume at or past its last event closes at once). When the hub has dropped
some of the execution's events from its buffer (`Subscription.unbuffered_below`), the stream first waits
for the consumer to have stored them, so a lagging consumer delays the stream but never makes it skip.
An event produced twice (same id, later offset) is sent once: the live hub marks a copy whose first copy
it still buffers, and the stream remembers the ids of the last 10,000 events it sent from history.

The stream yields pre-encoded bytes (sse-starlette passes bytes through untouched): live frames are the
hub's, built once per event and shared by every subscriber, and everything queued when the stream wakes
up is joined into one chunk (at most `CHUNK_FRAMES` events or about `CHUNK_BYTES`): one ASGI send and
one socket write per wake-up, not per event. The hub queues each fetch's events as one `LiveBatch`
shared by the execution's subscribers; when the joiner would send all of a batch (every type wanted, no
copy, no terminal event, all past the last offset sent) it sends the batch's frames, joined once for all
of them, without looking at each event. History goes out in chunks of the same size. When the client
disconnects, its subscription is abandoned at once (queue dropped, stream ended).

The store reads a new stream makes (its terminal, its history pages) go through the hub's
`SharedReads`: clients that open the same execution's stream at the same time share each query (and the
history's frames), each still getting the answer of a read that began after it subscribed.

Tenancy: the history and the live feed are both scoped to the caller's organization, and nothing else is
looked up, so another organization's execution id is exactly an unknown id: the stream sends nothing but
keep-alives and waits (an execution of the caller's own with that id may still start). Nothing tells a
caller whether some other organization has used the id (docs/read_api.md, Tenancy).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Final
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Query
from starlette.background import BackgroundTask
from starlette.types import Message

from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.live import LiveEvent, Subscription, sse_frame
from spanline.api.live.batch import CHUNK_BYTES, CHUNK_FRAMES, LiveBatch
from spanline.api.sse_response import LeanEventSourceResponse
from spanline.api.state import AppState
from spanline.bus.interface import BusUnavailableError, TopicPartition
from spanline.events.lineage import decode_route
from spanline.events.models import TERMINAL_WORKFLOW_EVENT_NAMES
from spanline.store import execution_reads as reads
from spanline.store.execution_reads import StoredEvent

router = APIRouter(prefix="/v1", tags=["stream"])

EVENT_TYPE_PREFIXES: Final = {"WORKFLOW": "workflow.", "NODE": "node."}
KEEP_ALIVE_S: Final = 15
HISTORY_PAGE: Final = 2_000  # stored events per history read: a long execution is never read at once
CONSUMED_POLL_S: Final = 0.2


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
    """The last `capacity` event ids sent from history: a copy produced twice follows its original closely,
    so a bounded window catches a live copy of a stored event while a long stream's memory stays flat."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._order: deque[str] = deque()
        self._ids: set[str] = set()
        self._capacity = capacity

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._ids

    def isdisjoint(self, event_ids: Iterable[str]) -> bool:
        return self._ids.isdisjoint(event_ids)

    def add(self, event_id: str) -> None:
        self._order.append(event_id)
        self._ids.add(event_id)
        if len(self._order) > self._capacity:
            self._ids.discard(self._order.popleft())


@dataclass(frozen=True, slots=True)
class _HistoryEvent:
    """A stored event as the joiner reads it, its frame built once for every stream sharing the read."""

    offset: int
    name: str
    event_id: str
    ends_root: bool
    frame: bytes


def _history_events(execution_id: UUID, stored: Iterable[StoredEvent]) -> list[_HistoryEvent]:
    execution = str(execution_id)
    events = []
    for event in stored:
        payload = event.payload.encode()
        route = decode_route(payload)
        if route is None:  # the consumer stores valid events only; never send what we cannot read
            continue
        ends_root = str(route.span_id) == execution and event.name in TERMINAL_WORKFLOW_EVENT_NAMES
        events.append(
            _HistoryEvent(
                event.offset, event.name, str(route.id), ends_root, sse_frame(event.offset, event.name, payload)
            )
        )
    return events


@dataclass(frozen=True, slots=True)
class _HistoryPage:
    events: list[_HistoryEvent]
    last_offset: int | None  # of the last stored event read (the next page starts after it)
    full: bool  # HISTORY_PAGE events were read: there may be more


async def _history_page(state: AppState, org: str, execution_id: UUID, after: int) -> _HistoryPage:
    """One page of the stored events after `after`, shared with the streams that ask at the same time."""

    async def read() -> _HistoryPage:
        stored = await reads.history(state.store, org, execution_id, after, HISTORY_PAGE)
        # Framing is CPU work in proportion to the page: off the loop the live streams share.
        events = await asyncio.to_thread(_history_events, execution_id, stored)
        return _HistoryPage(events, stored[-1].offset if stored else None, len(stored) >= HISTORY_PAGE)

    return await state.hub.reads.read(("history", org, execution_id, after), read)


async def _terminal_offset(state: AppState, org: str, execution_id: UUID) -> int | None:
    return await state.hub.reads.read(
        ("terminal", org, execution_id), lambda: reads.terminal_offset(state.store, org, execution_id)
    )


async def _until_consumed(state: AppState, subscription: Subscription, below: tuple[TopicPartition, int]) -> bool:
    """Wait until the consumer group has committed past `below` (what the hub dropped is stored or
    dead-lettered by then); False if the subscription ended first."""
    tp, offset = below
    while not subscription.closed:
        try:
            committed = await state.bus.committed_offsets(state.settings.consumer_group, tp.topic)
        except BusUnavailableError:
            committed = {}
        if committed.get(tp, -1) >= offset:
            return True
        await asyncio.sleep(CONSUMED_POLL_S)  # the group's progress has no push notification
    return False


class _Joiner:
    """Sends each event once, in offset order, from the history and then the live feed."""

    def __init__(self, execution_id: UUID, after: int, prefixes: tuple[str, ...]) -> None:
        self.execution_id = execution_id
        self.last_offset = after
        self.prefixes = prefixes
        self.every_type = set(prefixes) == set(EVENT_TYPE_PREFIXES.values())  # skip the name check
        self.history_ids: _RecentIds | None = None  # live copies are marked by the hub; history's need this
        self.history_cursor = after  # the last stored offset read
        self.finished = False

    def take(self, offset: int, name: str, event_id: str, ends_root: bool, duplicate: bool = False) -> bool:
        """Whether to send this event: new, past the last offset sent, of a wanted type. Notes the
        execution's terminal event (the stream ends after it, sent or filtered out)."""
        if offset <= self.last_offset or duplicate or (self.history_ids is not None and event_id in self.history_ids):
            return False
        self.last_offset = offset
        if ends_root:
            self.finished = True
        return self.every_type or name.startswith(self.prefixes)

    def history_frames(self, events: Iterable[_HistoryEvent]) -> Iterator[bytes]:
        """The frames of the stored events to send: all of them, also those stored after the terminal
        event (emitters may be out of order, SPEC §4); the live feed is not read after a terminal one."""
        for event in events:
            if self.take(event.offset, event.name, event.event_id, event.ends_root):
                yield event.frame
            if self.history_ids is None:
                self.history_ids = _RecentIds()
            self.history_ids.add(event.event_id)

    def live_chunk(self, items: Sequence[LiveEvent]) -> bytes:
        """The frames of these live events to send, joined (the same bytes object when only one)."""
        frames = []
        for item in items:
            if self.take(item.offset, item.name, item.event_id, item.ends_root, item.duplicate):
                frames.append(item.frame)
            if self.finished:
                break
        return b"".join(frames)

    def live_batches_chunk(self, batches: Sequence[LiveBatch]) -> bytes:
        """What `live_chunk` gives for the batches' events, in one piece: a batch that `take` would send
        whole (see `LiveBatch.plain`) is sent as its shared joined frames, without a look at each event."""
        parts = []
        for batch in batches:
            if self.finished:
                break
            if (
                batch.plain
                and self.every_type
                and batch.first_offset > self.last_offset
                and (self.history_ids is None or self.history_ids.isdisjoint(batch.event_ids))
            ):
                parts.append(batch.frames)
                self.last_offset = batch.last_offset
            elif chunk := self.live_chunk(batch.items):
                parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)


def _chunks(frames: Iterable[bytes]) -> Iterator[bytes]:
    """Frames joined into chunks of at most CHUNK_FRAMES frames or about CHUNK_BYTES."""
    batch: list[bytes] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if len(batch) >= CHUNK_FRAMES or size >= CHUNK_BYTES:
            yield b"".join(batch)
            batch, size = [], 0
    if batch:
        yield b"".join(batch)


async def _stream(
    state: AppState,
    org: str,
    execution_id: UUID,
    subscription: Subscription,
    joiner: _Joiner,
    release: Callable[[], object] = lambda: None,
) -> AsyncIterator[bytes]:
    """The stream's chunks; `release` (leaving the live feed) runs however it ends. One generator, not a
    wrapper around another: every wake-up of every subscriber passes through it."""
    try:
        unbuffered = subscription.unbuffered_below
        if unbuffered is not None and not await _until_consumed(state, subscription, unbuffered):
            return
        # Asked before the history is read: a terminal stored by now is in the history that follows.
        if await _terminal_offset(state, org, execution_id) is not None:
            joiner.finished = True
        while True:
            page = await _history_page(state, org, execution_id, joiner.history_cursor)
            for chunk in _chunks(joiner.history_frames(page.events)):
                yield chunk
            if page.last_offset is not None:
                joiner.history_cursor = page.last_offset
            if not page.full:
                break
            del page  # one page at a time is held, not the whole history
        while not joiner.finished:
            batches = await subscription.batches(CHUNK_FRAMES, CHUNK_BYTES)
            if batches is None:  # the feed dropped this client (too slow, gone) or is shutting down
                return
            chunk = joiner.live_batches_chunk(batches)
            if chunk:
                yield chunk
            if subscription.pending():
                # More was queued than one chunk takes, so batch() will not wait: let other streams run first.
                await asyncio.sleep(0)
    finally:
        release()


@router.get(
    "/workflow-executions/{execution_id}/events",
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def execution_events(
    execution_id: UUID,
    org: OrgDep,
    state: AppStateDep,
    event_types: Annotated[str | None, Query(description="WORKFLOW, NODE or both, comma-separated")] = None,
    last_event_id: Annotated[int | None, Query(ge=-1, description="resume after this id")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> LeanEventSourceResponse:
    """Every stored event of the execution in order, then live ones, until its terminal event; waits for
    an execution that has not started (another organization's id is one that has not: it waits too);
    resumes after Last-Event-ID with no gap and no duplicate."""
    prefixes = _prefixes(event_types)
    after = _resume_point(last_event_id_header, last_event_id)
    scope = state.hub.subscribe(execution_id, org)
    subscription = scope.__enter__()  # before reading history, so nothing falls between the two
    left = False

    def leave() -> None:
        nonlocal left
        if not left:
            left = True
            scope.__exit__(None, None, None)

    async def client_gone(_message: Message) -> None:
        subscription.abandon()  # free its queue now; sse-starlette then cancels the stream

    joiner = _Joiner(execution_id, after, prefixes)
    return LeanEventSourceResponse(
        _stream(state, org, execution_id, subscription, joiner, leave),
        ping=KEEP_ALIVE_S,
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
        client_close_handler_callable=client_gone,
        # Also when the body never starts (a client gone before the first send): no generator, no finally.
        background=BackgroundTask(leave),
    )
