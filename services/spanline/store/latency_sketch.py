"""The latency sketch of the usage rollups: a log-bucket histogram of `compute_nanos` (DDSketch's mapping).

A call of `x` ns (x >= 1) goes to bucket `1 + ceil(log(x) / log(GAMMA))`, a call of 0 ns to bucket 0, with
GAMMA = (1 + a) / (1 - a) and a = RELATIVE_ERROR. Bucket k >= 1 holds (GAMMA^(k-2), GAMMA^(k-1)] and is read
back as (1 - a) * GAMMA^(k-1), which is within a relative error `a` of every value in it. Buckets are a
monotonic function of the value, so the k-th smallest bucket is the bucket of the k-th smallest call: a
quantile read from the histogram is within `a` of the exact one, however the histogram was split and merged.

A rollup row keeps `Map(UInt16, UInt64)` bucket -> calls (a few dozen to a few hundred entries, never more
than ~1,100); rows merge by adding counts, which is exact and order-free, so re-derived rows, replays and
the two rollup tiers all give the same answer. Quantiles use the nearest-rank definition (the call at rank
ceil(q * n), 1-based), as ClickHouse's `quantileExactWeighted` computes it.

The SQL below is also spelled out literally in `consumer/derive.ROLLUP_SQL` and in migration 0013
(`tests/test_usage_sketch.py` checks they agree): changing RELATIVE_ERROR means a migration re-deriving
every rollup row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

RELATIVE_ERROR: Final = 0.02
GAMMA: Final = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
LEVELS: Final = (0.5, 0.95, 0.99)

# The bucket of a `compute_nanos` column or expression, and the milliseconds a bucket column stands for.
_GAMMA_SQL: Final = f"{1 + RELATIVE_ERROR} / {1 - RELATIVE_ERROR}"


def bucket_sql(nanos: str) -> str:
    return f"toUInt16(if({nanos} = 0, 0, 1 + ceil(log({nanos}) / log({_GAMMA_SQL}))))"


def bucket_ms_sql(bucket: str) -> str:
    return f"if({bucket} = 0, 0., {1 - RELATIVE_ERROR} * pow({_GAMMA_SQL}, {bucket} - 1) / 1e6)"


# The rollup's histogram of one minute (or hour) row, from its per-call rows.
HISTOGRAM_SQL: Final = f"sumMap(map({bucket_sql('compute_nanos')}, toUInt64(1)))"


def quantiles_from_histograms_sql(histogram: str, condition: str) -> str:
    """Milliseconds at LEVELS over the rows' histograms (an array; meaningless when no call matched)."""
    levels = ", ".join(map(str, LEVELS))
    merged = f"quantilesExactWeightedArrayIf({levels})(mapKeys({histogram}), mapValues({histogram}), {condition})"
    return f"arrayMap(b -> {bucket_ms_sql('b')}, {merged})"


def quantiles_from_calls_sql(nanos: str, condition: str) -> str:
    """The same over per-call rows: the answer a rollup would give for the same calls."""
    levels = ", ".join(map(str, LEVELS))
    merged = f"quantilesExactWeightedIf({levels})({bucket_sql(nanos)}, toUInt64(1), {condition})"
    return f"arrayMap(b -> {bucket_ms_sql('b')}, {merged})"


# A Python rendering of the same mapping, for tests and for reading histograms outside ClickHouse.
def bucket_of(nanos: int) -> int:
    return 0 if nanos == 0 else 1 + math.ceil(math.log(nanos) / math.log(GAMMA))


def bucket_ms(bucket: int) -> float:
    return 0.0 if bucket == 0 else (1 - RELATIVE_ERROR) * GAMMA ** (bucket - 1) / 1e6


def histogram_of(nanos: Iterable[int]) -> dict[int, int]:
    histogram: dict[int, int] = {}
    for value in nanos:
        bucket = bucket_of(value)
        histogram[bucket] = histogram.get(bucket, 0) + 1
    return histogram


def nearest_rank(values: Sequence[float], level: float) -> float:
    """The exact quantile the sketch approximates: the value at rank ceil(level * n) (1-based, at least 1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(level * len(ordered)))) - 1]


def quantile_ms(histogram: Mapping[int, int], level: float) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    threshold = max(1, math.ceil(level * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= threshold:
            return bucket_ms(bucket)
    raise AssertionError("unreachable: the threshold is at most the total")
