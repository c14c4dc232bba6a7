"""Usage analytics: a validated query (time range, dimensions, measures, granularity, filters) turned into
one parameterised SELECT over the rollups, and its rows turned into plain JSON-ready dicts.

Sources. Two rollup tiers with the same columns, one row per org x bucket x workflow x model x provider x
Kafka partition, read with FINAL and summed over partitions: `usage_rollup_hour` answers the whole hours
of the range and `usage_rollup_minute` the minutes before the first and after the last whole hour (all of
the range for minute granularity). Both answer every query that does not involve `status`; the rollups
have no status column (only `failed_calls`), so a query that groups or filters by `status` reads the
per-call rows of `usage_by_minute` (FINAL) instead, with the same minute grain and the same measures.

Latency quantiles come from the rollups' log-bucket histograms (`store/latency_sketch.py`: the call at
rank ceil(q * n), within 2 % relative error); the per-call path buckets the calls the same way, so every
source gives the same answer for the same calls.

Every statement has `org = {org:String}` in its WHERE; user input only ever travels as server-side
parameters (`{name:Type}`), never inside the SQL text. Column and expression text comes from the
fixed tables below, chosen by validated names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

from spanline.store import latency_sketch
from spanline.store.store import Store

MAX_LIMIT: Final = 10_000
DEFAULT_LIMIT: Final = 1_000

# A model call is a usage row with a model; a usage_result that reports cost only gives a model-less row,
# which adds its cost but is not a call (and has no latency), as in spans.model_calls.
_IS_CALL: Final = "model != ''"


@dataclass(frozen=True, slots=True)
class Dimension:
    column: str
    param_type: str  # ClickHouse type of a filter value
    rollup: bool  # the rollup has this column


DIMENSIONS: Final[Mapping[str, Dimension]] = {
    "model": Dimension("model", "String", rollup=True),
    "provider": Dimension("provider", "String", rollup=True),
    "workflow_id": Dimension("workflow_id", "UUID", rollup=True),
    "workflow_name": Dimension("workflow_name", "String", rollup=True),
    # The model call's span status: FULFILLED or REJECTED (usage is reported on terminal node events).
    "status": Dimension("status", "String", rollup=False),
}


@dataclass(frozen=True, slots=True)
class Measure:
    rollup_sql: str
    raw_sql: str
    kind: str  # "int", "decimal" or "float"
    columns: tuple[str, ...]  # the rollup columns rollup_sql reads


def _quantile(index: int) -> Measure:
    # One aggregate for the three levels; ClickHouse computes an aggregate repeated across measures once.
    # No calls -> NULL (the weighted quantile of nothing is 0).
    rollup = latency_sketch.quantiles_from_histograms_sql("latency_hist", _IS_CALL)
    raw = latency_sketch.quantiles_from_calls_sql("compute_nanos", _IS_CALL)
    return Measure(
        f"if(sumIf(calls, {_IS_CALL}) = 0, NULL, {rollup}[{index}])",
        f"if(countIf({_IS_CALL}) = 0, NULL, {raw}[{index}])",
        "float",
        ("model", "calls", "latency_hist"),
    )


MEASURES: Final[Mapping[str, Measure]] = {
    "input_tokens": Measure("sum(input_tokens)", "sum(input_tokens)", "int", ("input_tokens",)),
    "output_tokens": Measure("sum(output_tokens)", "sum(output_tokens)", "int", ("output_tokens",)),
    "total_tokens": Measure(
        "sum(input_tokens) + sum(output_tokens)",
        "sum(input_tokens) + sum(output_tokens)",
        "int",
        ("input_tokens", "output_tokens"),
    ),
    "cache_read_tokens": Measure("sum(cache_read_tokens)", "sum(cache_read_tokens)", "int", ("cache_read_tokens",)),
    "cache_write_tokens": Measure("sum(cache_write_tokens)", "sum(cache_write_tokens)", "int", ("cache_write_tokens",)),
    "cost_usd": Measure("sum(cost_usd)", "sum(cost_usd)", "decimal", ("cost_usd",)),
    "calls": Measure(f"sumIf(calls, {_IS_CALL})", f"countIf({_IS_CALL})", "int", ("model", "calls")),
    "failed_calls": Measure(
        f"sumIf(failed_calls, {_IS_CALL})",
        f"countIf({_IS_CALL} AND status = 'REJECTED')",
        "int",
        ("model", "failed_calls"),
    ),
    "executions": Measure("uniqExactMerge(executions_state)", "uniqExact(execution_id)", "int", ("executions_state",)),
    "latency_avg": Measure(
        f"sumIf(compute_nanos, {_IS_CALL}) / nullIf(sumIf(calls, {_IS_CALL}), 0) / 1e6",
        f"avgIf(compute_nanos, {_IS_CALL}) / 1e6",
        "float",
        ("model", "compute_nanos", "calls"),
    ),
    "latency_p50": _quantile(1),
    "latency_p95": _quantile(2),
    "latency_p99": _quantile(3),
}

# Measures of the actuals submitted on runs, answered by store/actual_queries.py (by the actual's
# timestamp), which can be broken down by workflow only.
ACTUAL_MEASURES: Final = ("actuals", "quality_avg")
ACTUAL_DIMENSIONS: Final = ("workflow_id", "workflow_name")

# Bucket starts, in UTC; weeks start on Monday (ISO).
GRANULARITIES: Final[Mapping[str, str]] = {
    "minute": "minute",
    "hour": "toStartOfHour(minute)",
    "day": "toStartOfDay(minute)",
    "week": "toDateTime(toMonday(minute), 'UTC')",
    "month": "toDateTime(toStartOfMonth(minute), 'UTC')",
}


class UsageQueryError(ValueError):
    """A query that cannot run; `problems` names every bad part."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: datetime  # inclusive: a minute bucket counts when its start is in [start, end)
    end: datetime
    dimensions: tuple[str, ...]
    measures: tuple[str, ...]
    granularity: str | None
    filters: Mapping[str, tuple[str | UUID, ...]]
    limit: int

    @property
    def uses_rollup(self) -> bool:
        return all(DIMENSIONS[name].rollup for name in (*self.dimensions, *self.filters))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _unique(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))


def _filter_values(name: str, raw: str | Sequence[str], problems: list[str]) -> tuple[str | UUID, ...]:
    values = [raw] if isinstance(raw, str) else list(raw)
    if not values:
        problems.append(f"filter {name!r} has no values")
        return ()
    if DIMENSIONS[name].param_type != "UUID":
        return tuple(values)
    parsed: list[str | UUID] = []
    for value in values:
        try:
            parsed.append(UUID(value))
        except ValueError:
            problems.append(f"filter {name!r}: {value!r} is not a UUID")
    return tuple(parsed)


def parse_usage_query(
    *,
    start: datetime,
    end: datetime,
    dimensions: Sequence[str],
    measures: Sequence[str],
    granularity: str | None = None,
    filters: Mapping[str, str | Sequence[str]] | None = None,
    limit: int | None = None,
) -> UsageQuery:
    """Validate everything at once, so one 422 names every problem."""
    problems: list[str] = []
    unknown_dimensions = [name for name in dimensions if name not in DIMENSIONS]
    if unknown_dimensions:
        problems.append(f"unknown dimension(s): {', '.join(unknown_dimensions)} (known: {', '.join(DIMENSIONS)})")
    unknown_measures = [name for name in measures if name not in MEASURES and name not in ACTUAL_MEASURES]
    if unknown_measures:
        known = ", ".join([*MEASURES, *ACTUAL_MEASURES])
        problems.append(f"unknown measure(s): {', '.join(unknown_measures)} (known: {known})")
    if any(name in ACTUAL_MEASURES for name in measures):
        unsplit = [name for name in [*dimensions, *(filters or {})] if name not in ACTUAL_DIMENSIONS]
        if unsplit:
            problems.append(f"actuals and quality_avg break down by workflow only, not by {', '.join(unsplit)}")
    if not measures:
        problems.append("measures: name at least one measure")
    unknown_filters = [name for name in filters or {} if name not in DIMENSIONS]
    if unknown_filters:
        problems.append(f"unknown filter(s): {', '.join(unknown_filters)} (filters name dimensions)")
    if granularity is not None and granularity not in GRANULARITIES:
        problems.append(f"unknown granularity {granularity!r} (known: {', '.join(GRANULARITIES)})")
    start, end = _utc(start), _utc(end)
    if end <= start:
        problems.append("the time range is empty: 'to' must be after 'from'")
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        problems.append(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    parsed_filters = {
        name: _filter_values(name, values, problems) for name, values in (filters or {}).items() if name in DIMENSIONS
    }
    if problems:
        raise UsageQueryError(problems)
    return UsageQuery(start, end, _unique(dimensions), _unique(measures), granularity, parsed_filters, limit)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE: Final = timedelta(minutes=1)
_HOUR: Final = timedelta(hours=1)


def _floor(value: datetime, step: timedelta) -> datetime:
    return value - (value - _EPOCH) % step


def _ceil(value: datetime, step: timedelta) -> datetime:
    floor = _floor(value, step)
    return floor if floor == value else floor + step


def whole_hours(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The hours [first, last) all of whose minutes count in [start, end), if any. A minute counts when
    its start is in the range: the minutes counted start at ceil(start) and end before ceil(end)."""
    try:
        first_minute, end_minute = _ceil(start, _MINUTE), _ceil(end, _MINUTE)
        first, last = _ceil(first_minute, _HOUR), _floor(end_minute, _HOUR)
    except OverflowError:  # bounds in the last hour of year 9999: let the minute tier answer
        return None
    return (first, last) if first < last else None


_START: Final = "{start:DateTime64(6, 'UTC')}"
_END: Final = "{end:DateTime64(6, 'UTC')}"
_FIRST_HOUR: Final = "{first_hour:DateTime64(6, 'UTC')}"
_END_HOUR: Final = "{end_hour:DateTime64(6, 'UTC')}"


def _rollup_source(query: UsageQuery, filters: list[str], parameters: dict[str, Any], *, hour_tier: bool) -> str:
    """FROM text for the rollups: the hour tier for the range's whole hours (buckets of an hour or more
    only), the minute tier for the minutes around them."""
    org = "org = {org:String}"
    hours = whole_hours(query.start, query.end) if hour_tier and query.granularity != "minute" else None
    if hours is None:
        where = [org, f"minute >= {_START}", f"minute < {_END}", *filters]
        return f"usage_rollup_minute FINAL\nWHERE {' AND '.join(where)}"
    parameters["first_hour"], parameters["end_hour"] = hours
    names = {"minute", *(DIMENSIONS[name].column for name in (*query.dimensions, *query.filters))}
    names.update(column for name in query.measures for column in MEASURES[name].columns)
    columns = ", ".join(sorted(names - {"minute"}))
    hour_where = [org, f"hour >= {_FIRST_HOUR}", f"hour < {_END_HOUR}", *filters]
    edges = f"((minute >= {_START} AND minute < {_FIRST_HOUR}) OR (minute >= {_END_HOUR} AND minute < {_END}))"
    minute_where = [org, edges, *filters]
    return (
        f"(\n    SELECT hour AS minute, {columns} FROM usage_rollup_hour FINAL\n    WHERE {' AND '.join(hour_where)}"
        f"\n    UNION ALL\n    SELECT minute, {columns} FROM usage_rollup_minute FINAL\n"
        f"    WHERE {' AND '.join(minute_where)}\n)"
    )


def build_usage_sql(query: UsageQuery, org: str, *, hour_tier: bool = True) -> tuple[str, dict[str, Any]]:
    """The SELECT and its parameters. Output columns: [bucket,] d0.., m0.. in the query's order.
    `hour_tier=False` answers from the minute rollup alone (the same answer, slower: tests and benchmarks)."""
    rollup = query.uses_rollup
    parameters: dict[str, Any] = {"org": org, "start": query.start, "end": query.end, "limit": query.limit + 1}
    filters = []
    for index, (name, values) in enumerate(sorted(query.filters.items())):
        dimension = DIMENSIONS[name]
        filters.append(f"{dimension.column} IN {{f{index}:Array({dimension.param_type})}}")
        parameters[f"f{index}"] = list(values)
    if rollup:
        source = _rollup_source(query, filters, parameters, hour_tier=hour_tier)
    else:
        where = ["org = {org:String}", f"minute >= {_START}", f"minute < {_END}", *filters]
        source = f"usage_by_minute FINAL\nWHERE {' AND '.join(where)}"
    # Keys leave as text formatted by ClickHouse (vectorised, where Python's strftime and str(UUID) would run
    # once per row), while rows are grouped and ordered by the raw values (aliases defined inside the expressions).
    keys: list[str] = []
    aliases: list[str] = []
    if query.granularity is not None:
        keys.append(f"formatDateTime({GRANULARITIES[query.granularity]} AS bucket, '%Y-%m-%dT%H:%i:%SZ')")
        aliases.append("bucket")
    for index, name in enumerate(query.dimensions):
        keys.append(f"toString({DIMENSIONS[name].column} AS d{index})")
        aliases.append(f"d{index}")
    measures = [
        f"{MEASURES[name].rollup_sql if rollup else MEASURES[name].raw_sql} AS m{index}"
        for index, name in enumerate(query.measures)
    ]
    sql = f"SELECT {', '.join([*keys, *measures])}\nFROM {source}"
    if aliases:
        sql += f"\nGROUP BY {', '.join(aliases)}\nORDER BY {', '.join(aliases)}"
    sql += "\nLIMIT {limit:UInt32}"
    return sql, parameters


def _float_or_none(value: Any) -> float | None:
    if value is None or math.isnan(value):
        return None  # a latency over no calls
    return float(value)


# Column converters (None: the driver's value is already the JSON value: text keys, integer sums).
_MEASURE_VALUE: Final[Mapping[str, Callable[[Any], int | float | None] | None]] = {
    "int": None,
    "decimal": float,
    "float": _float_or_none,
}


@dataclass(frozen=True, slots=True)
class UsageRows:
    rows: list[dict[str, Any]]
    truncated: bool


def shape_rows(query: UsageQuery, rows: Sequence[Sequence[Any]]) -> UsageRows:
    """Rows of build_usage_sql's SELECT as dicts: keys arrive as text, measures by their kind. Converted a
    column at a time (map over a column runs in C; a month by hour is ~9,000 rows)."""
    names = (["bucket"] if query.granularity is not None else []) + [*query.dimensions, *query.measures]
    kept = rows[: query.limit]
    if not kept:
        return UsageRows([], truncated=False)
    converters = [None] * (len(names) - len(query.measures)) + [
        _MEASURE_VALUE[MEASURES[m].kind] for m in query.measures
    ]
    columns = [
        column if convert is None else list(map(convert, column))
        for convert, column in zip(converters, zip(*kept, strict=True), strict=True)
    ]
    # Equal lengths by construction; strict zips would add a third to the cost of building the dicts.
    shaped = [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=False)]
    return UsageRows(shaped, truncated=len(rows) > query.limit)


async def run_usage_query(store: Store, org: str, query: UsageQuery) -> UsageRows:
    sql, parameters = build_usage_sql(query, org)
    return shape_rows(query, await store.query(sql, parameters))
