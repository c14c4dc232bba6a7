"""Usage analytics: a validated query (time range, dimensions, measures, granularity, filters) turned into
one parameterised SELECT over the minute rollup, and its rows turned into plain JSON-ready dicts.

Sources. `usage_rollup_minute` (org x minute x workflow x model x provider, one row per Kafka partition,
read with FINAL and summed over partitions; quantile and distinct-run *states* merged) answers every
query that does not involve `status`. The rollup has no status column (only `failed_calls`), so a query
that groups or filters by `status` reads the per-call rows of `usage_by_minute` (FINAL) instead, with the
same minute grain and the same measures computed from raw values.

Every statement has `org = {org:String}` in its WHERE; user input only ever travels as server-side
parameters (`{name:Type}`), never inside the SQL text. Column and expression text comes from the
fixed tables below, chosen by validated names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

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


def _quantile(index: int) -> Measure:
    return Measure(
        f"quantilesMergeIf(0.5, 0.95, 0.99)(latency_ms_state, {_IS_CALL})[{index}]",
        f"quantilesIf(0.5, 0.95, 0.99)(compute_nanos / 1e6, {_IS_CALL})[{index}]",
        "float",
    )


MEASURES: Final[Mapping[str, Measure]] = {
    "input_tokens": Measure("sum(input_tokens)", "sum(input_tokens)", "int"),
    "output_tokens": Measure("sum(output_tokens)", "sum(output_tokens)", "int"),
    "total_tokens": Measure("sum(input_tokens) + sum(output_tokens)", "sum(input_tokens) + sum(output_tokens)", "int"),
    "cache_read_tokens": Measure("sum(cache_read_tokens)", "sum(cache_read_tokens)", "int"),
    "cache_write_tokens": Measure("sum(cache_write_tokens)", "sum(cache_write_tokens)", "int"),
    "cost_usd": Measure("sum(cost_usd)", "sum(cost_usd)", "decimal"),
    "calls": Measure(f"sumIf(calls, {_IS_CALL})", f"countIf({_IS_CALL})", "int"),
    "failed_calls": Measure(f"sumIf(failed_calls, {_IS_CALL})", f"countIf({_IS_CALL} AND status = 'REJECTED')", "int"),
    "executions": Measure("uniqExactMerge(executions_state)", "uniqExact(execution_id)", "int"),
    "latency_avg": Measure(
        f"sumIf(compute_nanos, {_IS_CALL}) / nullIf(sumIf(calls, {_IS_CALL}), 0) / 1e6",
        f"avgIf(compute_nanos, {_IS_CALL}) / 1e6",
        "float",
    ),
    "latency_p50": _quantile(1),
    "latency_p95": _quantile(2),
    "latency_p99": _quantile(3),
}

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
    unknown_measures = [name for name in measures if name not in MEASURES]
    if unknown_measures:
        problems.append(f"unknown measure(s): {', '.join(unknown_measures)} (known: {', '.join(MEASURES)})")
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


def build_usage_sql(query: UsageQuery, org: str) -> tuple[str, dict[str, Any]]:
    """The SELECT and its parameters. Output columns: [bucket,] d0.., m0.. in the query's order."""
    rollup = query.uses_rollup
    table = "usage_rollup_minute" if rollup else "usage_by_minute"
    parameters: dict[str, Any] = {"org": org, "start": query.start, "end": query.end, "limit": query.limit + 1}
    where = ["org = {org:String}", "minute >= {start:DateTime64(6, 'UTC')}", "minute < {end:DateTime64(6, 'UTC')}"]
    for index, (name, values) in enumerate(sorted(query.filters.items())):
        dimension = DIMENSIONS[name]
        where.append(f"{dimension.column} IN {{f{index}:Array({dimension.param_type})}}")
        parameters[f"f{index}"] = list(values)
    keys: list[str] = []
    if query.granularity is not None:
        keys.append(f"{GRANULARITIES[query.granularity]} AS bucket")
    keys.extend(f"{DIMENSIONS[name].column} AS d{index}" for index, name in enumerate(query.dimensions))
    measures = [
        f"{MEASURES[name].rollup_sql if rollup else MEASURES[name].raw_sql} AS m{index}"
        for index, name in enumerate(query.measures)
    ]
    aliases = [key.rsplit(" AS ", 1)[1] for key in keys]
    sql = f"SELECT {', '.join([*keys, *measures])}\nFROM {table} FINAL\nWHERE {' AND '.join(where)}"
    if aliases:
        sql += f"\nGROUP BY {', '.join(aliases)}\nORDER BY {', '.join(aliases)}"
    sql += "\nLIMIT {limit:UInt32}"
    return sql, parameters


def _iso(value: datetime) -> str:
    return _utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _measure_value(kind: str, value: Any) -> int | float | None:
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return float(Decimal(value))
    if value is None or math.isnan(value):
        return None  # a latency over no calls
    return float(value)


_DIMENSION_VALUE: Final[Mapping[str, Callable[[Any], str]]] = {"workflow_id": str}


@dataclass(frozen=True, slots=True)
class UsageResult:
    rows: list[dict[str, Any]]
    truncated: bool


def shape_rows(query: UsageQuery, rows: Sequence[Sequence[Any]]) -> UsageResult:
    shaped: list[dict[str, Any]] = []
    for row in rows[: query.limit]:
        values = iter(row)
        item: dict[str, Any] = {}
        if query.granularity is not None:
            item["bucket"] = _iso(next(values))
        for name in query.dimensions:
            item[name] = _DIMENSION_VALUE.get(name, str)(next(values))
        for name in query.measures:
            item[name] = _measure_value(MEASURES[name].kind, next(values))
        shaped.append(item)
    return UsageResult(shaped, truncated=len(rows) > query.limit)


async def run_usage_query(store: Store, org: str, query: UsageQuery) -> UsageResult:
    sql, parameters = build_usage_sql(query, org)
    return shape_rows(query, await store.query(sql, parameters))
