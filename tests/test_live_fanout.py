"""SSE fan-out internals: the live hub routes with a light decode, validates and encodes each event once and
shares the frame with every subscriber; the stream coalesces queued frames into few sends that an SSE
parser reads as the same events; a malformed event is never delivered live."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import orjson
import pytest
from sse_starlette.event import ensure_bytes

from spanline.api.live import LiveEvent, LiveHub, SharedReads, Subscription, sse_frame
from spanline.api.routes import stream
from spanline.bus.interface import ORG_HEADER, BusMessage
from spanline.bus.memory import MemoryBus
from spanline.events.codec import decode_event
from spanline.events.lineage import decode_route, root_execution_id, route_root_execution_id
from spanline.events.models import event_name
from spanline.store import execution_reads
from spanline.store.execution_reads import StoredEvent
from tests.conftest import EXAMPLES_DIR

TOPIC = "events"
FAILING_EXECUTION = "5c6e4337-15ba-4bdd-9772-19d30e7a269f"  # the root span of failing.ndjson


def run_of(execution_id: UUID) -> list[bytes]:
    """failing.ndjson as a run of `execution_id`: workflow initiated, nodes, workflow rejected."""
    text = (EXAMPLES_DIR / "failing.ndjson").read_text().replace(FAILING_EXECUTION, str(execution_id))
    return [line.encode() for line in text.splitlines()]


def renamed(payload: bytes) -> bytes:
    """The same event under a new event id."""
    document = orjson.loads(payload)
    document["id"] = str(uuid.uuid4())
    return orjson.dumps(document)


def old_route_bytes(offset: int, name: str, payload: bytes) -> bytes:
    """What the route sent before frames were pre-encoded: a dict that sse-starlette encoded per send."""
    return ensure_bytes({"id": str(offset), "event": name, "data": payload.decode()}, "\r\n")


def parse_sse(body: bytes) -> list[dict[str, str]]:
    """A client's reading of an SSE body (fields per message, multi-line data joined by \\n)."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in body.decode().replace("\r\n", "\n").split("\n"):
        if line == "":
            if current:
                messages.append(current)
                current = {}
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        current[field] = current[field] + "\n" + value if field in current else value
    assert not current, "the body ends inside a message"
    return messages


def example_lines() -> Iterator[bytes]:
    for path in sorted(EXAMPLES_DIR.glob("*.ndjson")):
        yield from path.read_bytes().splitlines()


def test_the_light_route_agrees_with_the_full_decode() -> None:
    lines = list(example_lines())
    assert len(lines) > 10
    for line in lines:
        event, route = decode_event(line), decode_route(line)
        assert route is not None
        assert (route.id, route.span_id) == (event.id, event.span_id)
        assert route.name == event_name(event)
        assert route_root_execution_id(route) == root_execution_id(event)
    assert decode_route(b"not json") is None
    assert decode_route(b'{"id": "x", "span_id": "y", "name": "node.execution.log"}') is None


@pytest.mark.parametrize(
    "payload",
    [
        next(example_lines()),
        b"{}",
        b'{\n  "pretty": true,\r\n  "crlf": 1,\r  "cr": 2\n}',
        '{"text": "line\u2028separator\u2029and \u0085next line"}'.encode(),
    ],
    ids=["event", "empty", "line-breaks", "unicode-separators"],
)
def test_a_frame_is_byte_for_byte_what_sse_starlette_sends(payload: bytes) -> None:
    assert sse_frame(42, "node.execution.log", payload) == old_route_bytes(42, "node.execution.log", payload)


@pytest.fixture
async def hub() -> AsyncIterator[tuple[LiveHub, MemoryBus]]:
    bus = MemoryBus(default_partitions=3)
    await bus.create_topics([TOPIC], 3)
    live = LiveHub(bus, TOPIC, "acme")
    await live.start()
    yield live, bus
    await live.stop()


async def publish(bus: MemoryBus, execution_id: UUID, payloads: list[bytes], org: bytes = b"acme") -> None:
    producer = bus.producer()
    for payload in payloads:
        await producer.send(TOPIC, payload, key=str(execution_id).encode(), headers=((ORG_HEADER, org),))


async def until_the_end(subscription: Subscription) -> list[LiveEvent]:
    """Everything delivered up to and including the execution's terminal event (the hub's order)."""
    received: list[LiveEvent] = []
    while not (received and received[-1].ends_root):
        items = await asyncio.wait_for(subscription.batch(500, 1 << 20), 10)
        assert items is not None, "the subscription ended before the terminal event"
        received += items
    return received


async def test_the_hub_encodes_each_event_once_and_every_subscriber_gets_the_same_bytes(
    hub: tuple[LiveHub, MemoryBus],
) -> None:
    live, bus = hub
    execution_id = uuid.uuid4()
    payloads = run_of(execution_id)
    with live.subscribe(execution_id, "acme") as first, live.subscribe(execution_id, "acme") as second:
        await publish(bus, execution_id, payloads)
        got_first, got_second = await until_the_end(first), await until_the_end(second)
        with live.subscribe(execution_id, "acme") as late:  # after the end: from the hub's buffer
            got_late = await until_the_end(late)

    assert [item.message.value for item in got_first] == payloads
    for a, b, c in zip(got_first, got_second, got_late, strict=True):
        assert a is b is c and a.frame is b.frame  # one object, one frame, shared
        assert a.frame == old_route_bytes(a.offset, a.name, a.message.value)
    assert [item.ends_root for item in got_first] == [False] * (len(payloads) - 1) + [True]


async def test_a_malformed_event_is_never_delivered_live(hub: tuple[LiveHub, MemoryBus]) -> None:
    live, bus = hub
    execution_id = uuid.uuid4()
    first, *middle, last = run_of(execution_id)
    no_body = orjson.loads(middle[0])
    del no_body["body"]  # routable (id, span_id, name, parent are fine) but not a valid event
    bad_timestamp = orjson.loads(renamed(middle[0]))
    bad_timestamp["timestamp"] = "yesterday"
    with live.subscribe(execution_id, "acme") as subscription:
        await publish(bus, execution_id, [first, orjson.dumps(no_body), orjson.dumps(bad_timestamp)])
        await publish(bus, execution_id, [renamed(first)], org=b"\xff")  # an org header the consumer rejects
        await publish(bus, execution_id, [*middle, last])
        delivered = await until_the_end(subscription)
        with live.subscribe(execution_id, "acme") as late:
            delivered_late = await until_the_end(late)

    assert [item.message.value for item in delivered] == [first, *middle, last]
    assert not any(item.duplicate for item in delivered)  # a malformed event with the same id is no first copy
    assert delivered_late == delivered


async def test_a_copy_produced_twice_is_marked_and_not_sent_twice(hub: tuple[LiveHub, MemoryBus]) -> None:
    live, bus = hub
    execution_id = uuid.uuid4()
    first, second, *rest = run_of(execution_id)
    with live.subscribe(execution_id, "acme") as subscription:
        await publish(bus, execution_id, [first, second, second, *rest])  # a producer retry: same id, later offset
        delivered = await until_the_end(subscription)

    assert [item.duplicate for item in delivered] == [False, False, True] + [False] * len(rest)
    joiner = stream._Joiner(execution_id, -1, tuple(stream.EVENT_TYPE_PREFIXES.values()))
    sent = parse_sse(joiner.live_chunk(delivered))
    assert [orjson.loads(message["data"]) for message in sent] == [orjson.loads(p) for p in [first, second, *rest]]


async def test_another_organizations_subscriber_gets_nothing(hub: tuple[LiveHub, MemoryBus]) -> None:
    live, bus = hub
    execution_id = uuid.uuid4()
    with live.subscribe(execution_id, "globex") as other, live.subscribe(execution_id, "acme") as own:
        await publish(bus, execution_id, run_of(execution_id))
        await until_the_end(own)
        assert other.pending() == 0


def live_item(offset: int, payload: bytes) -> LiveEvent:
    item = LiveEvent.route(BusMessage(TOPIC, 0, offset, None, payload, (), 0), "acme")
    assert item is not None and item.prepare()
    return item


async def no_terminal_stored(*_args: Any) -> None:
    return None


async def collect(stream_: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream_]


async def test_a_burst_is_sent_in_few_chunks_that_parse_into_the_same_events_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    execution_id = uuid.uuid4()
    first, node, *_, last = run_of(execution_id)
    payloads = [first] + [renamed(node) for _ in range(1200)] + [last]  # ~0.6 MB: several chunks
    stored = [StoredEvent(offset, event_name(decode_event(p)), p.decode()) for offset, p in enumerate(payloads[:3])]

    async def history(_store: Any, org: str, execution: UUID, after: int, limit: int) -> list[StoredEvent]:
        assert (org, execution, after) == ("acme", execution_id, -1)
        return stored

    monkeypatch.setattr(execution_reads, "history", history)
    monkeypatch.setattr(execution_reads, "terminal_offset", no_terminal_stored)
    subscription = Subscription(execution_id, "acme", limit=10_000)
    for offset, payload in enumerate(payloads):
        if offset >= 1:  # the live buffer overlaps the history (offsets 1, 2): each is sent once
            subscription.offer(live_item(offset, payload))
    joiner = stream._Joiner(execution_id, -1, tuple(stream.EVENT_TYPE_PREFIXES.values()))
    state: Any = SimpleNamespace(store=None, hub=SimpleNamespace(reads=SharedReads()))

    chunks = await asyncio.wait_for(collect(stream._stream(state, "acme", execution_id, subscription, joiner)), 10)

    expected = b"".join(old_route_bytes(offset, event_name(decode_event(p)), p) for offset, p in enumerate(payloads))
    assert b"".join(chunks) == expected  # the same bytes as one send per event, in order, once each
    assert parse_sse(b"".join(chunks)) == parse_sse(expected)
    # Coalesced: one history chunk, then ~64 KiB each (one send per event would be 1,202 chunks).
    assert len(chunks) <= 2 + math.ceil(len(expected) / stream.CHUNK_BYTES)
    assert all(chunk.endswith(b"\r\n\r\n") and len(chunk) <= stream.CHUNK_BYTES + 2048 for chunk in chunks)
    assert joiner.finished and subscription.pending() == 0


async def test_filters_and_history_copies_hold_in_the_coalesced_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    execution_id = uuid.uuid4()
    payloads = run_of(execution_id)
    names = [event_name(decode_event(p)) for p in payloads]
    stored = [StoredEvent(offset, names[offset], p.decode()) for offset, p in enumerate(payloads[:2])]

    async def history(*_args: Any) -> list[StoredEvent]:
        return stored

    monkeypatch.setattr(execution_reads, "history", history)
    monkeypatch.setattr(execution_reads, "terminal_offset", no_terminal_stored)
    subscription = Subscription(execution_id, "acme", limit=10_000)
    # A copy of history's first event at a later offset (a producer retry the hub never saw the original of).
    for offset, payload in enumerate([payloads[0], *payloads[2:]], start=2):
        subscription.offer(live_item(offset, payload))
    joiner = stream._Joiner(execution_id, -1, ("workflow.",))
    state: Any = SimpleNamespace(store=None, hub=SimpleNamespace(reads=SharedReads()))

    chunks = await asyncio.wait_for(collect(stream._stream(state, "acme", execution_id, subscription, joiner)), 10)

    sent = parse_sse(b"".join(chunks))
    wanted = [(n, orjson.loads(p)["id"]) for p, n in zip(payloads, names, strict=True) if n.startswith("workflow.")]
    assert [(m["event"], orjson.loads(m["data"])["id"]) for m in sent] == wanted
    assert joiner.finished


async def test_an_abandoned_subscription_ends_at_once_and_frees_its_queue() -> None:
    subscription = Subscription(uuid.uuid4(), "acme", limit=100)
    item = live_item(0, run_of(uuid.uuid4())[0])
    for _ in range(50):
        subscription.offer(item)
    subscription.abandon()  # the client hung up
    assert subscription.pending() == 0 and subscription.closed
    subscription.offer(item)
    assert subscription.pending() == 0
    assert await subscription.batch(500, 1 << 16) is None


async def test_shared_reads_run_once_per_burst_and_never_answer_from_before_a_call() -> None:
    shared = SharedReads()
    began = [asyncio.Event(), asyncio.Event()]
    release = [asyncio.Event(), asyncio.Event()]
    reads_made: list[int] = []

    async def read() -> int:
        number = len(reads_made)
        reads_made.append(number)
        began[number].set()
        await release[number].wait()
        return number

    burst = [asyncio.create_task(shared.read("history", read)) for _ in range(3)]
    await began[0].wait()  # the burst's read is running: later callers must not get its answer
    late = [asyncio.create_task(shared.read("history", read)) for _ in range(2)]
    burst[0].cancel()  # a caller going away does not cancel the read for the others
    release[0].set()
    assert await asyncio.gather(*burst[1:]) == [0, 0]
    await began[1].wait()
    release[1].set()
    assert await asyncio.gather(*late) == [1, 1]
    assert reads_made == [0, 1]  # five callers, two reads
