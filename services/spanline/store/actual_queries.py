"""The usage query's feedback measures over `execution_actuals`: `actuals` (how many outputs got an actual)
and `quality_avg` (the mean of their quality scores; null when none has one), counted by the actual's
timestamp in [from, to) and broken down by the run's workflow (from `executions`). A query naming both kinds
of measures runs both statements and joins their rows by bucket and dimensions."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from spanline.store.store import Store
from spanline.store.usage_queries import (
    ACTUAL_MEASURES,
    DIMENSIONS,
    GRANULARITIES,
    MEASURES,
    UsageQuery,
    UsageRows,
    build_usage_sql,
    shape_rows,
)

_SQL: Final = {"actuals": "toUInt64(count())", "quality_avg": "avgOrNull(quality)"}

_SOURCE: Final = """(
    SELECT toStartOfMinute(a.timestamp) AS minute, a.quality AS quality, e.workflow_id AS workflow_id,
           e.workflow_name AS workflow_name
    FROM (SELECT * FROM execution_actuals FINAL
          WHERE org = {org:String} AND timestamp >= {start:DateTime64(6, 'UTC')}
            AND timestamp < {end:DateTime64(6, 'UTC')}) AS a
    LEFT JOIN (SELECT execution_id, workflow_id, workflow_name FROM executions FINAL WHERE org = {org:String}) AS e
    USING execution_id
)"""


def build_actuals_sql(query: UsageQuery, org: str, measures: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """Output columns as build_usage_sql's: [bucket,] d0.., m0.. (user input only as parameters)."""
    parameters: dict[str, Any] = {"org": org, "start": query.start, "end": query.end, "limit": query.limit + 1}
    where = []
    for index, (name, values) in enumerate(sorted(query.filters.items())):
        dimension = DIMENSIONS[name]
        where.append(f"{dimension.column} IN {{f{index}:Array({dimension.param_type})}}")
        parameters[f"f{index}"] = list(values)
    keys: list[str] = []
    aliases: list[str] = []
    if query.granularity is not None:
        keys.append(f"formatDateTime({GRANULARITIES[query.granularity]} AS bucket, '%Y-%m-%dT%H:%i:%SZ')")
        aliases.append("bucket")
    for index, name in enumerate(query.dimensions):
        keys.append(f"toString({DIMENSIONS[name].column} AS d{index})")
        aliases.append(f"d{index}")
    columns = [*keys, *(f"{_SQL[name]} AS m{index}" for index, name in enumerate(measures))]
    sql = f"SELECT {', '.join(columns)}\nFROM {_SOURCE}"
    if where:
        sql += f"\nWHERE {' AND '.join(where)}"
    if aliases:
        sql += f"\nGROUP BY {', '.join(aliases)}\nORDER BY {', '.join(aliases)}"
    return sql + "\nLIMIT {limit:UInt32}", parameters


def _neutral(measure: str) -> int | float | None:
    """A measure's value in a row the other statement has no match for: counts 0, averages null."""
    if measure in ACTUAL_MEASURES:
        return 0 if measure == "actuals" else None
    return {"int": 0, "decimal": 0.0}.get(MEASURES[measure].kind)


async def run_query(store: Store, org: str, query: UsageQuery) -> UsageRows:
    usage_measures = tuple(name for name in query.measures if name in MEASURES)
    actual_measures = tuple(name for name in query.measures if name in ACTUAL_MEASURES)
    keys = (["bucket"] if query.granularity is not None else []) + list(query.dimensions)
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    truncated = False
    if usage_measures:
        usage_query = dataclasses.replace(query, measures=usage_measures)
        sql, parameters = build_usage_sql(usage_query, org)
        usage = shape_rows(usage_query, await store.query(sql, parameters))
        truncated = usage.truncated
        merged = {tuple(row[key] for key in keys): row for row in usage.rows}
        if not actual_measures:
            return usage
    sql, parameters = build_actuals_sql(query, org, actual_measures)
    rows = await store.query(sql, parameters)
    truncated = truncated or len(rows) > query.limit
    for row in rows[: query.limit]:
        key, values = tuple(row[: len(keys)]), row[len(keys) :]
        found = merged.setdefault(key, dict(zip(keys, key, strict=True)))
        found.update({name: value for name, value in zip(actual_measures, values, strict=True)})
    if not keys and not merged:  # the totals row exists even over nothing
        merged[()] = {}
    ordered = [merged[key] for key in sorted(merged)]
    shaped = [{**row, **{m: row.get(m, _neutral(m)) for m in query.measures if m not in row}} for row in ordered]
    shaped = [{key: row[key] for key in [*keys, *query.measures]} for row in shaped]
    return UsageRows(shaped[: query.limit], truncated=truncated or len(shaped) > query.limit)
