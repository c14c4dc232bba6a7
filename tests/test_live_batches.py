"""The fan-out's shared batches: the hub hands every subscriber of an execution the same `LiveBatch` per
fetch, and a stream sends a batch's joined frames without looking at each event when that is what the
event-by-event path would send. Property: for any events (out of order, duplicates, terminal events,
history copies, type filters) the batch path sends the same bytes and ends in the same state."""

from __future__ import annotations

import asyncio
import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message

from spanline.api.live import LiveEvent, LiveHub, Subscription
from spanline.api.live.batch import CHUNK_BYTES, CHUNK_FRAMES, LiveBatch, split
from spanline.api.routes import stream
from spanline.api.sse_response import LeanEventSourceResponse
from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.bus.memory import MemoryBus
from tests.test_live_fanout import TOPIC, renamed, run_of

EXECUTION = uuid.uuid4()
RUN = run_of(EXECUTION)  # workflow initiated, node events, workflow rejected (the terminal one)


def live_event(offset: int, payload: bytes, duplicate: bool = False) -> LiveEvent:
    item = LiveEvent.route(BusMessage(TOPIC, 0, offset, None, payload, (), 0), "acme")
    assert item is not None and item.prepare()
    item.duplicate = duplicate
    return item


# One generated event: (offset, index into RUN, duplicate?, renamed?). RUN[-1] is the terminal event.
events_strategy = st.lists(
    st.tuples(st.integers(0, 40), st.integers(0, len(RUN) - 1), st.booleans(), st.booleans()), max_size=30
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=events_strategy,
    cuts=st.lists(st.integers(1, 6), min_size=1, max_size=10),
    after=st.integers(-1, 10),
    only_workflow=st.booleans(),
    history=st.lists(st.integers(0, len(RUN) - 1), max_size=3),
)
def test_the_batch_path_sends_what_the_event_path_sends(
    events: list[tuple[int, int, bool, bool]], cuts: list[int], after: int, only_workflow: bool, history: list[int]
) -> None:
    payloads = {index: renamed(RUN[index]) for index in range(len(RUN))}
    items = [
        live_event(offset, renamed(RUN[index]) if fresh else payloads[index], duplicate)
        for offset, index, duplicate, fresh in events
    ]
    batches, start = [], 0
    for size in cuts * (len(items) + 1):
        if start >= len(items):
            break
        batches.append(LiveBatch(items[start : start + size]))
        start += size
    prefixes = ("workflow.",) if only_workflow else tuple(stream.EVENT_TYPE_PREFIXES.values())
    by_event, by_batch = (stream._Joiner(EXECUTION, after, prefixes) for _ in range(2))
    if history:  # ids the stream sent from the store: a live copy of one is not sent again
        for joiner in (by_event, by_batch):
            joiner.history_ids = stream._RecentIds()
            for index in history:
                joiner.history_ids.add(live_event(0, payloads[index]).event_id)

    expected = by_event.live_chunk(items)
    assert by_batch.live_batches_chunk(batches) == expected
    assert (by_batch.last_offset, by_batch.finished) == (by_event.last_offset, by_event.finished)


def test_a_fetch_is_split_into_chunk_sized_batches_and_a_plain_one_is_sent_as_one_shared_object() -> None:
    node = RUN[1]
    items = [live_event(offset, renamed(node)) for offset in range(1, 1200)]
    batches = list(split(items))
    assert [item for batch in batches for item in batch.items] == items
    assert all(len(batch) <= CHUNK_FRAMES and batch.size <= CHUNK_BYTES for batch in batches)
    assert len(batches) > 1
    assert all(batch.plain for batch in batches)
    joiner = stream._Joiner(EXECUTION, 0, tuple(stream.EVENT_TYPE_PREFIXES.values()))
    assert joiner.live_batches_chunk(batches[:1]) is batches[0].frames  # no copy for one batch
    assert batches[0].frames is batches[0].frames  # joined once
    assert not LiveBatch([live_event(5, RUN[1]), live_event(5, renamed(RUN[2]))]).plain  # offsets not increasing
    assert not LiveBatch([live_event(5, RUN[1]), live_event(6, RUN[1], duplicate=True)]).plain
    assert not LiveBatch([live_event(5, RUN[1]), live_event(6, RUN[-1])]).plain  # the terminal event


async def test_every_subscriber_of_an_execution_gets_the_same_batch_object() -> None:
    bus = MemoryBus(default_partitions=1)
    await bus.create_topics([TOPIC], 1)
    hub = LiveHub(bus, TOPIC, "acme")
    await hub.start()
    try:
        with hub.subscribe(EXECUTION, "acme") as first, hub.subscribe(EXECUTION, "acme") as second:
            producer = bus.producer()
            for payload in RUN:
                await producer.send(TOPIC, payload, key=str(EXECUTION).encode(), headers=((ORG_HEADER, b"acme"),))
            got: list[list[LiveBatch]] = [[], []]
            for index, subscription in enumerate((first, second)):
                while sum(len(batch) for batch in got[index]) < len(RUN):
                    taken = await asyncio.wait_for(subscription.batches(CHUNK_FRAMES, CHUNK_BYTES), 10)
                    assert taken is not None
                    got[index] += taken
        assert all(a is b for a, b in zip(*got, strict=True))
        assert [item.message.value for batch in got[0] for item in batch.items] == RUN
    finally:
        await hub.stop()


async def test_batches_next_and_batch_take_turns_on_one_queue_without_loss_or_repeat() -> None:
    subscription = Subscription(EXECUTION, "acme", limit=100)
    items = [live_event(offset, renamed(RUN[1])) for offset in range(10)]
    subscription.offer_batch(LiveBatch(items[:4]))
    subscription.offer_batch(LiveBatch(items[4:7]))
    subscription.offer_batch(LiveBatch(items[7:]))
    assert subscription.pending() == 10
    assert await subscription.next() is items[0]
    partial = await subscription.batch(2, 1 << 20)
    assert partial == items[1:3]
    rest_of_first = await subscription.batches(100, 1 << 20)
    assert rest_of_first is not None
    assert [item for batch in rest_of_first for item in batch.items] == items[3:]
    assert subscription.pending() == 0
    subscription.offer_batch(LiveBatch(items[:4]))
    subscription.offer_batch(LiveBatch(items[4:]))
    bounded = await subscription.batches(5, 1 << 20)  # whole batches that fit, and at least one
    assert bounded is not None and [len(batch) for batch in bounded] == [4]
    assert subscription.pending() == 6


async def test_the_lean_response_keeps_a_send_timeout_when_one_is_set() -> None:
    async def stuck(_message: Message) -> None:
        await anyio.sleep(10)

    response = LeanEventSourceResponse(iter(()), send_timeout=0.05)
    with pytest.raises(SendTimeoutError):
        await response._send_with_timeout(stuck, {"type": "http.response.body", "body": b"", "more_body": True})
    sent: list[Message] = []

    async def record(message: Message) -> None:
        sent.append(message)

    untimed = LeanEventSourceResponse(iter(()))
    await untimed._send_with_timeout(record, {"type": "http.response.body", "body": b"x", "more_body": True})
    assert sent == [{"type": "http.response.body", "body": b"x", "more_body": True}]
