"""The consumer's guarantees at its boundaries, each on its own: the storability check at decode, the
transient/permanent split of write errors, and the bisection that isolates what the store refuses."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from spanline.consumer import storable
from spanline.consumer.decode import AcceptedEvent
from spanline.consumer.write_errors import is_permanent, isolate_refused
from spanline.events.codec import EventDecodeError, decode_event
from spanline.events.lineage import decode_route
from spanline.store.store import StoreUnavailableError
from tests.odd_events import COUNTS, decode, fulfilled, nested, reason_of


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"body__usage_result__cost__0__value": 1e30}, "cost_out_of_range"),
        ({"body__usage_result__cost__0__value": -1e30}, "cost_out_of_range"),
        ({"body__usage_result__cost__0__value": -0.25}, None),  # a credit: stored as sent
        ({"body__usage_result__cost__0__value": float(storable.MAX_ABS_COST)}, None),
        ({"timestamp": "1899-12-31T23:59:59Z"}, "timestamp_out_of_range"),
        ({"timestamp": "2300-01-01T00:00:00Z"}, "timestamp_out_of_range"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp_out_of_range"),  # usage: the rollup minute is a DateTime
        ({"timestamp": "2106-02-08T00:00:00Z"}, "timestamp_out_of_range"),
        ({"timestamp": "2026-01-01T00:00:00+14:00"}, None),
        ({"body__usage_result__usage__0__ml_model_usage__input_token_count": 2**64}, "count_out_of_range"),
        ({f"{COUNTS}__output_token_count": storable.MAX_COUNT + 1}, "count_out_of_range"),
        ({"body__usage_result__usage__0__ml_model_usage__cache_read_input_tokens": 10**40}, "count_out_of_range"),
        ({f"{COUNTS}__compute_nanos": storable.MAX_COMPUTE_NANOS + 1}, "count_out_of_range"),
        ({"body__usage_result__usage__0__ml_model_usage__compute_nanos": storable.MAX_COMPUTE_NANOS}, None),
        ({"body__usage_result__usage__0__ml_model_usage__input_token_count": -1}, "schema"),
        ({"body__outputs": {"text": "a\x00b"}, "body__node_definition__name": "n\x00"}, None),
    ],
)  # fmt: skip
def test_every_value_is_checked_against_what_the_store_holds(changes: dict[str, Any], reason: str | None) -> None:
    assert reason_of(fulfilled(**changes)) == reason


def test_a_node_event_without_usage_may_be_older_than_the_rollup_buckets() -> None:
    event = fulfilled(timestamp="1950-06-01T00:00:00Z")
    del event["body"]["usage_result"]
    assert reason_of(event) is None


def test_too_many_calls_for_the_call_index() -> None:
    call = {"ml_model_name": "", "ml_model_usage": {}}
    event = fulfilled(body__usage_result={"usage": [call] * (storable.MAX_CALLS + 1)})
    assert reason_of(event) == "too_many_calls"
    event = fulfilled(body__usage_result={"usage": [call] * storable.MAX_CALLS})
    assert reason_of(event) is None


def test_nesting_is_refused_before_the_decoder_recurses() -> None:
    assert reason_of(nested(storable.MAX_JSON_DEPTH - 10)) is None
    assert reason_of(nested(storable.MAX_JSON_DEPTH)) == "too_deep"
    assert reason_of(nested(200_000)) == "too_deep"
    # Brackets inside strings are not nesting.
    assert reason_of(fulfilled(body__outputs={"s": "[" * 10_000})) is None


def test_json_depth_skips_strings_and_escapes() -> None:
    assert storable.json_depth(b'{"a": "[[[\\"]]]", "b": [[{}]]}') == 4
    assert storable.json_depth(b"[]") == 1
    assert storable.json_depth(b'"[[["') == 0


def test_the_codec_and_the_router_refuse_deep_nesting_instead_of_raising() -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(nested(100_000))
    assert caught.value.reason == "too_deep"
    parent = b'{"type":"WORKFLOW","span_id":"%s","parent":null}' % str(uuid.uuid4()).encode()
    for _ in range(5000):
        parent = b'{"type":"WORKFLOW","span_id":"%s","parent":%s}' % (str(uuid.uuid4()).encode(), parent)
    ids = (str(uuid.uuid4()).encode(), str(uuid.uuid4()).encode())
    assert decode_route(b'{"id":"%s","span_id":"%s","name":"x","parent":%s}' % (*ids, parent)) is None


def test_invalid_utf8_and_lone_surrogates_are_refused_at_decode() -> None:
    raw = msgspec.json.encode(fulfilled(body__outputs={"s": "PLACEHOLDER"}))
    assert reason_of(raw.replace(b"PLACEHOLDER", b"\xff\xfe")) == "not_json"
    assert reason_of(raw.replace(b"PLACEHOLDER", b"\\ud800")) == "not_json"


def test_sub_microsecond_digits_round_to_the_column_precision() -> None:
    result = decode(fulfilled(timestamp="2026-11-02T09:30:00.1234567Z"))
    assert isinstance(result, AcceptedEvent)
    assert result.event.timestamp == datetime(2026, 11, 2, 9, 30, 0, 123457, tzinfo=UTC)


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (OverflowError("int too big to convert"), True),
        (struct.error("argument out of range"), True),
        (DataError("Unable to create native array for column `n`"), True),
        (DatabaseError("Code: 407. DECIMAL_OVERFLOW", code=407), True),
        (DatabaseError("Code: 53. TYPE_MISMATCH", code=53), True),
        (OperationalError("Network Error"), False),
        (DatabaseError("Code: 202. TOO_MANY_SIMULTANEOUS_QUERIES", code=202), False),
        (DatabaseError("Code: 159. TIMEOUT_EXCEEDED", code=159), False),
        (DatabaseError("Code: 16. NO_SUCH_COLUMN_IN_TABLE", code=16), False),  # an upgrade in progress
        (DatabaseError("no code"), False),
        (StoreUnavailableError("down"), False),
        (ConnectionError("reset"), False),
        (TimeoutError(), False),
        (RuntimeError("unknown"), False),
    ],
)
def test_write_errors_are_permanent_only_when_they_are_about_the_data(error: Exception, permanent: bool) -> None:
    assert is_permanent(error) is permanent


async def test_bisection_isolates_each_refused_item_and_writes_the_rest() -> None:
    written: list[int] = []

    async def attempt(items: Sequence[int]) -> None:
        if any(item % 7 == 3 for item in items):
            raise OverflowError(f"refused {items}")
        written.extend(items)

    refused = await isolate_refused(list(range(40)), attempt)
    assert [item for item, _ in refused] == [3, 10, 17, 24, 31, 38]
    assert all(isinstance(error, OverflowError) for _, error in refused)
    assert sorted(written) == [item for item in range(40) if item % 7 != 3]


async def test_bisection_lets_a_transient_error_through_for_the_caller_to_retry() -> None:
    async def attempt(items: Sequence[int]) -> None:
        if len(items) == 1:
            raise StoreUnavailableError("down")
        raise OverflowError("refused")

    with pytest.raises(StoreUnavailableError):
        await isolate_refused([1, 2, 3], attempt)


async def test_a_refused_derivation_key_is_skipped_and_counted_and_the_others_are_derived() -> None:
    from collections.abc import Collection
    from datetime import datetime
    from uuid import UUID

    from spanline.bus.memory import MemoryBus
    from spanline.consumer.dlq import DeadLetterPublisher
    from spanline.consumer.loop import ConsumerLoop, LoopOptions, PendingTotals
    from spanline.consumer.rows import BatchRows, BucketKey, ExecutionKey

    bad: ExecutionKey = ("acme", UUID(int=13))
    derived: list[object] = []

    class Writer:
        async def write_events(self, rows: BatchRows) -> None:
            return None

        async def derive_totals(self, executions: Collection[ExecutionKey], buckets: Collection[BucketKey]) -> None:
            if bad in executions:
                raise DatabaseError("Code: 407. DECIMAL_OVERFLOW", code=407)
            derived.extend([*executions, *buckets])

    bus = MemoryBus()
    loop = ConsumerLoop(
        bus.consumer(["t"], group_id="g"), Writer(), DeadLetterPublisher(bus.producer(), "dlq"), LoopOptions("o", 1024)
    )
    pending = PendingTotals()
    pending.executions = {("acme", UUID(int=n)) for n in range(20)}
    pending.buckets = {(0, "acme", datetime(2026, 1, 1, tzinfo=UTC))}
    await loop._derive_totals(pending)
    assert loop.metrics.derive_skipped == 1
    assert set(derived) == (pending.executions - {bad}) | pending.buckets
