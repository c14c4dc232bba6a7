"""Exactly-once effect and order independence through the real `ConsumerLoop` (in-process bus, chDB):
executions produced permuted and with duplicates, consumed in random batch splits by consumer processes
that are stopped or crash and restart from a random point the group committed earlier, read back equal to
the same executions produced once, in order, and consumed in one go: every table a reader sees, every
detail page (paged by prev_span_id) and the SSE history a new stream replays.

Examples: the hypothesis profile (tests/conftest.py; `HYPOTHESIS_PROFILE=nightly` for more). One chDB
database serves every example; each example's organizations carry a fresh tag, so examples never meet."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spanline.bus.interface import ORG_HEADER, TopicPartition
from spanline.bus.memory import MemoryBus
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT, fresh_database
from tests.consumer_events import Execution, expected_totals, generate_execution
from tests.loop_harness import TOPIC, Run, consume, produce, rewind
from tests.reader_view import detail_pages, sse_history, tables

PARTITIONS = 4
ORGS = ("default", "acme", "globex")
Message = tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]


@dataclass(repr=False)
class Scenario:
    executions: list[Execution]
    feed: list[tuple[int, int]]  # (execution, event) in the order produced, duplicates included
    keeps_order: bool  # each execution's events in their own order (as Kafka keeps a key's)
    runs: list[Run]  # consumer processes in turn; the last one drains the topic
    rewinds: list[int]  # after each run but the last: how far back to rewind, per mille of its commits
    page_limit: int

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis prints with this
        printer.text(repr(self))

    def __repr__(self) -> str:  # the executions' events are long; their ids and sizes identify them
        executions = [(e.execution_id, e.org, len(e.events), e.status) for e in self.executions]
        return (
            f"Scenario(executions={executions}, feed={self.feed}, keeps_order={self.keeps_order}, "
            f"runs={self.runs}, rewinds={self.rewinds}, page_limit={self.page_limit})"
        )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    rng = random.Random(draw(st.integers(0, 2**32)))
    start = datetime(2026, 11, 2, 9, 59, 58, tzinfo=UTC)  # runs straddle minute (and hour) buckets
    executions = [
        generate_execution(rng, start=start + timedelta(seconds=rng.randint(0, 3)), org=rng.choice(ORGS), max_depth=1)
        for _ in range(draw(st.integers(1, 3)))
    ]
    streams = [[(index, event) for event in range(len(e.events))] for index, e in enumerate(executions)]
    total = sum(len(stream) for stream in streams)
    keeps_order = draw(st.booleans())
    if keeps_order:  # an interleaving: which execution's next event comes next
        picks = draw(st.lists(st.integers(0, len(streams) - 1), min_size=total, max_size=total))
        feed, heads = [], [0] * len(streams)
        for pick in picks:
            pick = next(i for i in [pick, *range(len(streams))] if heads[i] < len(streams[i]))
            feed.append(streams[pick][heads[pick]])
            heads[pick] += 1
    else:
        feed = draw(st.permutations([item for stream in streams for item in stream]))
    for original, where in draw(st.lists(st.tuples(st.integers(0, total - 1), st.integers(0, 10**6)), max_size=6)):
        position = feed.index(feed[original])  # produced twice: the same bytes again, at a later offset
        feed.insert(position + 1 + where % (len(feed) - position), feed[original])
    sizes = st.lists(st.integers(0, max(1, len(feed) // 2)), min_size=1, max_size=3)
    intervals = st.sampled_from([0.0, 3600.0])  # derive every batch, or only when idle / stopping
    earlier = draw(st.lists(st.tuples(sizes, st.sampled_from(["stop", "crash"]), intervals), max_size=2))
    runs = [Run(s, ending, interval) for s, ending, interval in earlier]
    runs.append(Run(draw(sizes), "drain", draw(intervals)))
    rewinds = draw(st.lists(st.integers(0, 1000), min_size=len(earlier), max_size=len(earlier)))
    return Scenario(executions, feed, keeps_order, runs, rewinds, draw(st.integers(3, 10)))


def messages(scenario: Scenario, tag: str, feed: list[tuple[int, int]]) -> list[Message]:
    out = []
    for index, event in feed:
        execution = scenario.executions[index]
        headers = () if execution.org == "default" else ((ORG_HEADER, f"{tag}-{execution.org}".encode()),)
        out.append((execution.execution_id.encode(), execution.payloads()[event], headers))
    return out


async def ingest(store: Store, scenario: Scenario, tag: str, *, reference: bool) -> MemoryBus:
    """Produce and consume the scenario's feed (reference: each event once, in order, one batch)."""
    bus = MemoryBus(default_partitions=PARTITIONS)
    await bus.create_topics([TOPIC], PARTITIONS)
    in_order = [(index, event) for index, e in enumerate(scenario.executions) for event in range(len(e.events))]
    await produce(bus, messages(scenario, tag, in_order if reference else scenario.feed))
    runs = [Run([], "drain")] if reference else scenario.runs
    commits: list[dict[TopicPartition, int]] = []
    for number, run in enumerate(runs):
        await consume(bus, store, run, default_org=f"{tag}-default", commits=commits)
        if run.ending != "drain":
            points = [{}, *commits]
            rewind(bus, PARTITIONS, points[scenario.rewinds[number] * (len(points) - 1) // 1000])
    end = {TopicPartition(TOPIC, p): offset for p, offset in enumerate(bus.end_offsets(TOPIC)) if offset}
    assert {tp: o for tp, o in bus.committed("spanline-consumer").items() if o} == end, "not all committed"
    return bus


def offsets_of_copies(bus: MemoryBus) -> dict[str, list[int]]:
    """Each event id's offsets, first produced first (a copy produced later has the same id)."""
    copies: dict[str, list[int]] = defaultdict(list)
    for partition, end in enumerate(bus.end_offsets(TOPIC)):
        for message in bus.read(TopicPartition(TOPIC, partition), 0, end):
            copies[json.loads(message.value)["id"]].append(message.offset)
    return copies


async def reader_view(store: Store, scenario: Scenario, tag: str) -> dict[str, Any]:
    view: dict[str, Any] = {"tables": await tables(store, tag, ORGS)}
    for execution in scenario.executions:
        org, execution_id = f"{tag}-{execution.org}", uuid.UUID(execution.execution_id)
        view[execution.execution_id] = {
            "pages": await detail_pages(store, org, execution_id, scenario.page_limit),
            "sse": await sse_history(store, org, execution_id),
        }
    return view


def page_events(pages: list[dict[str, Any]], ordered: bool) -> Iterator[Any]:
    """Each page without its span events, then the events; in stream order only where that is defined."""
    for page in pages:
        yield {key: value for key, value in page.items() if key != "events"}
        yield {span: events if ordered else sorted(events) for span, events in page["events"].items()}


async def check(store: Store, scenario: Scenario) -> None:
    reference_tag, scrambled_tag = (f"p{uuid.uuid4().hex[:10]}" for _ in range(2))
    # The two ingests share nothing but the store (their own bus, their own organizations): side by side.
    _, bus = await asyncio.gather(
        ingest(store, scenario, reference_tag, reference=True), ingest(store, scenario, scrambled_tag, reference=False)
    )
    reference, scrambled = await asyncio.gather(
        reader_view(store, scenario, reference_tag), reader_view(store, scenario, scrambled_tag)
    )

    # The reference itself is right: one run per execution with its status, sums as generated.
    runs = reference["tables"]["runs"]
    assert {str(row[1]): row[5] for row in runs} == {e.execution_id: e.status for e in scenario.executions}
    expected = expected_totals(scenario.executions)
    assert sum(row[15] for row in runs) == expected["exec_input_tokens"]
    assert sum(row[16] for row in runs) == expected["exec_output_tokens"]
    assert sum(row[20] for row in runs) == expected["exec_cost_usd"]
    assert len(reference["tables"]["usage"]) == expected["usage_calls"]
    assert sum(row[5] for row in reference["tables"]["rollup_minute"]) == expected["rollup_calls"]
    assert sum((row[12] for row in reference["tables"]["rollup_hour"]), Decimal(0)) == expected["rollup_cost_usd"]
    assert all(count == 1 for *_, count in reference["tables"]["rollup_minute_rows"])

    assert scrambled["tables"] == reference["tables"]
    copies = offsets_of_copies(bus)
    # Stream order is arrival order: the reference's where each execution's events came in order, once.
    # (With a duplicate the store keeps the copy inserted last: test_a_duplicate_keeps_its_first_offset.)
    ordered = scenario.keeps_order and all(len(offsets) == 1 for offsets in copies.values())
    for execution in scenario.executions:
        ours, theirs = scrambled[execution.execution_id], reference[execution.execution_id]
        assert list(page_events(ours["pages"], ordered)) == list(page_events(theirs["pages"], ordered))
        spans = [span.span_id for page in ours["pages"] for span in page["spans"]]
        assert len(spans) == len(set(spans)) == len({event["span_id"] for event in execution.events})
        # SSE: the reference replays every event once, in the order produced; any feed replays every event
        # once, in offset order, under the offset of one of its copies.
        assert [event.event_id for event in theirs["sse"]] == [event["id"] for event in execution.events]
        sent = ours["sse"]
        assert sorted(event.event_id for event in sent) == sorted(event["id"] for event in execution.events)
        assert [event.offset for event in sent] == sorted({event.offset for event in sent})
        assert all(event.offset in copies[event.event_id] for event in sent)
        if ordered:
            assert [(e.event_id, e.name) for e in sent] == [(e.event_id, e.name) for e in theirs["sse"]]


@pytest.fixture(scope="module")
def shared_store(clickhouse_base_dsn: str) -> Iterator[Store]:
    with fresh_database(clickhouse_base_dsn, "props") as dsn:
        store = Store(dsn, threads=4)
        asyncio.run(store.run(lambda client: apply_migrations(client, PROJECT_ROOT / "schemas" / "clickhouse")))
        yield store
        store.close()


@given(scenario=scenarios())
def test_any_order_duplicates_batching_and_replays_read_as_the_in_order_result(
    shared_store: Store, scenario: Scenario
) -> None:
    asyncio.run(check(shared_store, scenario))


def test_the_scenarios_cover_what_they_claim() -> None:
    """The generator does produce duplicates, crashes, rewinds and both kinds of order (not only a few)."""
    seen: dict[str, int] = defaultdict(int)

    @settings(max_examples=300, derandomize=True, database=None)  # the same examples whatever the profile
    @given(scenario=scenarios())
    def tally(scenario: Scenario) -> None:
        seen["examples"] += 1
        seen["duplicates"] += len(scenario.feed) > sum(len(e.events) for e in scenario.executions)
        seen["crashes"] += any(run.ending == "crash" for run in scenario.runs)
        seen["keeps_order"] += scenario.keeps_order
        seen["restarts"] += len(scenario.runs) > 1

    tally()
    assert all(seen[kind] >= seen["examples"] // 10 for kind in ("duplicates", "crashes", "keeps_order", "restarts"))


def test_a_duplicate_keeps_its_first_offset(shared_store: Store) -> None:
    execution = generate_execution(random.Random(7), org="acme", max_depth=0)
    feed = [(0, event) for event in range(len(execution.events))] + [(0, 0)]  # the initiated event again, last
    scenario = Scenario([execution], feed, True, [Run([], "drain")], [], 100)
    tag = f"p{uuid.uuid4().hex[:10]}"

    async def replayed() -> list[int]:
        await ingest(shared_store, scenario, tag, reference=False)
        sent = await sse_history(shared_store, f"{tag}-acme", uuid.UUID(execution.execution_id))
        assert [event.event_id for event in sent] == [event["id"] for event in execution.events]
        return [event.offset for event in sent]

    assert asyncio.run(replayed()) == list(range(len(execution.events)))
