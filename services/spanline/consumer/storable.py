"""Whether a decoded event can be stored faithfully: every value checked once, at decode, against what
the tables (schemas/clickhouse/) and their derived sums can hold. An event that fails goes to the DLQ with
the reason; nothing reaches an insert that the insert would refuse (an insert refused for one event would
otherwise hold back every event behind it). docs/consumer.md, "What the store can hold", is the table.

Limits below a column's own range are chosen so that the derived sums cannot overflow either: a span, a
run or a rollup bucket sums its calls' counts in UInt64 and costs in Decimal(38, 12).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from spanline.events.models import Event, NodeExecutionFulfilledEvent, NodeExecutionRejectedEvent, UsageResult

# DateTime64(6, 'UTC') (every event timestamp) holds 1900-01-01 ... 2299-12-31 (ClickHouse's documented range).
TIMESTAMP_MIN: Final = datetime(1900, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX: Final = datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
# DateTime('UTC') (the usage minute and hour buckets) is a UInt32 of seconds: 1970-01-01 ... 2106-02-07 06:28:15.
BUCKET_TIME_MIN: Final = datetime(1970, 1, 1, tzinfo=UTC)
BUCKET_TIME_MAX: Final = datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)
# Token and character counts per call: a trillion, so 18 million calls at the limit still sum within UInt64.
MAX_COUNT: Final = 10**12
# compute_nanos per call: about 11.6 days; 18,000 such calls in one bucket still sum within UInt64.
MAX_COMPUTE_NANOS: Final = 10**15
# |cost| per entry in USD: Decimal(38, 12) holds 26 integer digits, so 10^14 entries at the limit still sum.
MAX_ABS_COST: Final = Decimal(10**12)
# usage.call_index is a UInt16.
MAX_CALLS: Final = 2**16
# JSON nesting (objects and arrays): the decoder's own recursion limit depends on the stack it runs on, and the
# API reads stored inputs/outputs back with json.loads; 128 levels is far above any real event and safe for both.
MAX_JSON_DEPTH: Final = 128

_TOKENS: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


@dataclass(frozen=True, slots=True)
class Unstorable:
    reason: str  # the DLQ reason header: a short category
    detail: str  # what exactly, for the DLQ error header


def json_depth(payload: bytes) -> int:
    """The deepest nesting of objects and arrays in a JSON document (strings skipped)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(payload):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def too_deep(payload: bytes, limit: int = MAX_JSON_DEPTH) -> Unstorable | None:
    """Checked on the bytes, before the decoder recurses. Counting brackets is one C pass; only a document
    with more brackets than the limit (so possibly deeper) is scanned."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return None
    depth = json_depth(payload)
    if depth <= limit:
        return None
    return Unstorable("too_deep", f"JSON nesting is {depth} levels, the limit is {limit}")


def unstorable(event: Event) -> Unstorable | None:
    """The first value of `event` the store cannot hold faithfully, or None."""
    if not TIMESTAMP_MIN <= event.timestamp <= TIMESTAMP_MAX:
        return Unstorable(
            "timestamp_out_of_range",
            f"timestamp {event.timestamp.isoformat()} is outside {TIMESTAMP_MIN.isoformat()} .. "
            f"{TIMESTAMP_MAX.isoformat()} (DateTime64)",
        )
    if isinstance(event, NodeExecutionFulfilledEvent | NodeExecutionRejectedEvent) and event.body.usage_result:
        return _usage_problem(event.timestamp, event.body.usage_result)
    return None


def _usage_problem(timestamp: datetime, result: UsageResult) -> Unstorable | None:
    if not BUCKET_TIME_MIN <= timestamp <= BUCKET_TIME_MAX:
        return Unstorable(
            "timestamp_out_of_range",
            f"an event with usage at {timestamp.isoformat()}: its rollup minute must be within "
            f"{BUCKET_TIME_MIN.isoformat()} .. {BUCKET_TIME_MAX.isoformat()} (DateTime)",
        )
    if len(result.usage) > MAX_CALLS:
        return Unstorable("too_many_calls", f"{len(result.usage)} model calls, the limit is {MAX_CALLS}")
    for index, usage in enumerate(result.usage):
        counts = usage.ml_model_usage
        for name in (
            "input_token_count", "output_token_count", "cache_read_input_tokens", "cache_creation_input_tokens",
            "input_char_count", "output_char_count", "compute_nanos",
        ):  # fmt: skip
            value = getattr(counts, name)
            limit = MAX_COMPUTE_NANOS if name == "compute_nanos" else MAX_COUNT
            if value is not None and value > limit:
                return Unstorable("count_out_of_range", f"usage[{index}].{name} = {value} is above {limit}")
    for index, cost in enumerate(result.cost or ()):
        if not math.isfinite(cost.value) or abs(Decimal(repr(cost.value))) > MAX_ABS_COST:
            return Unstorable(
                "cost_out_of_range", f"cost[{index}].value = {cost.value!r} is beyond ±{MAX_ABS_COST} (Decimal(38, 12))"
            )
    return None
