"""Usage analytics: POST /v1/usage/query on N model calls over 30 days (model x day, workflow x hour), beside
the same answer computed by scanning the raw per-call rows (`usage FINAL`) in the same run.

Generating N calls as events through the consumer would take hours on this machine, so the rows are made
where they live: `INSERT INTO usage SELECT ... FROM numbers(N)` (one org, 12 workflows using 2 of 5 models
each, 6 Kafka partitions, 2 % failed calls, spread evenly over 30 days), then `usage_by_minute` from those
rows with the column mapping of `consumer/rows.py`, then `usage_rollup_minute` and `usage_rollup_hour` with
the consumer's own derivation statements (`consumer/derive.ROLLUP_SQL` with every (partition, org, minute) as
`{keys}`, then `ROLLUP_HOUR_SQL` with every (partition, org, hour)), one day of buckets per statement.
The API is `create_app` on a real uvicorn server in this process (chDB: one process per data directory).
The raw scan is the same answer from `usage FINAL`, its p95 ClickHouse's sampled `quantile`. Accuracy: every
answer's latency_p95 against the exact nearest-rank p95 of the raw rows (untimed). The chDB directory is left
behind (its path is in the results) for `bench/usage_variants.py`.

    PYTHONPATH=$PWD/services:$PWD python bench/usage.py [--calls 10000000] [--rounds 20]

Writes bench/results/usage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import httpx
from tests.live_server import serve

from bench.common import machine, percentiles, write_result
from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.consumer import derive
from spanline.core.config import Settings
from spanline.store.api_keys import create_api_key
from spanline.store.latency_sketch import RELATIVE_ERROR
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

START = "2026-10-01 00:00:00"
FROM, TO = "2026-10-01T00:00:00Z", "2026-10-31T00:00:00Z"
MEASURES = ["calls", "input_tokens", "output_tokens", "cost_usd", "latency_p95"]

_FILL_USAGE = """
INSERT INTO usage
SELECT
    'acme',
    toUUID(concat('00000000-0000-4000-8000-', leftPad(lower(hex(intDiv(number, 20))), 12, '0'))),
    generateUUIDv4(number), generateUUIDv4(number + 1), 0, toUInt32(number % 6),
    toDateTime64('{start}', 6, 'UTC') + toIntervalMillisecond(intDiv(number * 2592000000, {calls})),
    toUUID(concat('00000000-0000-4000-9000-', leftPad(toString(w), 12, '0'))), concat('workflow-', toString(w)),
    toUUID(concat('00000000-0000-4000-a000-', leftPad(toString(cityHash64(number, 3) % 8), 12, '0'))),
    concat('node-', toString(cityHash64(number, 3) % 8)),
    if(cityHash64(number, 1) % 50 = 0, 'REJECTED', 'FULFILLED'),
    ['gpt-4o-mini', 'gpt-4o', 'claude-haiku-4', 'claude-sonnet-4', 'llama-3-8b'][1 + m],
    ['openai', 'openai', 'anthropic', 'anthropic', 'local'][1 + m],
    100 + cityHash64(number, 2) % 4000, 10 + cityHash64(number, 4) % 800, cityHash64(number, 5) % 500, 0,
    0, 0, 100000000 + cityHash64(number, 6) % 3000000000,
    toDecimal128(toString((100 + cityHash64(number, 2) % 4000) * 0.00000015), 12)
FROM (SELECT number, number % 12 AS w, (w + cityHash64(number, 7) % 2) % 5 AS m FROM numbers({calls}))
"""

_FILL_BY_MINUTE = """
INSERT INTO usage_by_minute
SELECT kafka_partition, org, toStartOfMinute(timestamp), event_id, call_index, execution_id, workflow_id,
       workflow_name, status, model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
       compute_nanos, cost_usd
FROM usage
"""

_KEYS = "SELECT DISTINCT kafka_partition, org, minute FROM usage_by_minute WHERE toYYYYMMDD(minute) = {day:UInt32}"
_HOUR_KEYS = (
    "SELECT DISTINCT kafka_partition, org, toStartOfHour(minute) FROM usage_rollup_minute "
    "WHERE toYYYYMMDD(minute) = {day:UInt32}"
)

_RAW = {
    "model_day": """
SELECT toStartOfDay(timestamp) AS bucket, model, count(), sum(input_tokens), sum(output_tokens), sum(cost_usd),
       quantile(0.95)(compute_nanos / 1e6)
FROM usage FINAL
WHERE org = 'acme' AND timestamp >= '2026-10-01 00:00:00' AND timestamp < '2026-10-31 00:00:00'
GROUP BY bucket, model ORDER BY bucket, model
""",
    "workflow_hour": """
SELECT toStartOfHour(timestamp) AS bucket, workflow_id, count(), sum(input_tokens), sum(output_tokens),
       sum(cost_usd), quantile(0.95)(compute_nanos / 1e6)
FROM usage FINAL
WHERE org = 'acme' AND timestamp >= '2026-10-01 00:00:00' AND timestamp < '2026-10-31 00:00:00'
GROUP BY bucket, workflow_id ORDER BY bucket, workflow_id
""",
}
# The exact nearest-rank p95 (what the sketch approximates), per answer row.
_EXACT_P95 = {
    "model_day": """
SELECT toStartOfDay(timestamp) AS bucket, model, quantileExactWeighted(0.95)(compute_nanos / 1e6, toUInt64(1))
FROM usage FINAL
WHERE org = 'acme' AND timestamp >= '2026-10-01 00:00:00' AND timestamp < '2026-10-31 00:00:00'
GROUP BY bucket, model ORDER BY bucket, model
""",
    "workflow_hour": """
SELECT toStartOfHour(timestamp) AS bucket, workflow_id, quantileExactWeighted(0.95)(compute_nanos / 1e6, toUInt64(1))
FROM usage FINAL
WHERE org = 'acme' AND timestamp >= '2026-10-01 00:00:00' AND timestamp < '2026-10-31 00:00:00'
GROUP BY bucket, workflow_id ORDER BY bucket, workflow_id
""",
}
_QUERIES = {
    "model_day": {"dimensions": ["model"], "granularity": "day"},
    "workflow_hour": {"dimensions": ["workflow_id"], "granularity": "hour", "limit": 10000},
}


async def build(store: Store, calls: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    began = time.perf_counter()
    await store.command(_FILL_USAGE.replace("{start}", START).replace("{calls}", str(calls)))
    timings["fill_usage_s"] = time.perf_counter() - began
    began = time.perf_counter()
    await store.command(_FILL_BY_MINUTE)
    timings["fill_usage_by_minute_s"] = time.perf_counter() - began
    began = time.perf_counter()
    days = await store.query("SELECT DISTINCT toYYYYMMDD(minute) FROM usage_by_minute ORDER BY 1")
    for (day,) in days:  # one derivation per day of buckets, as the consumer derives a batch's buckets
        keys = _KEYS.replace("{day:UInt32}", str(day))
        sql = derive.ROLLUP_SQL.replace("{keys}", keys)
        await store.run(lambda client, sql=sql: client.command(sql, settings=derive.QUERY_SETTINGS))
    timings["derive_rollup_s"] = time.perf_counter() - began
    began = time.perf_counter()
    for (day,) in days:  # hours after their minutes, as the consumer does after a batch's minute rows
        keys = _HOUR_KEYS.replace("{day:UInt32}", str(day))
        sql = derive.ROLLUP_HOUR_SQL.replace("{keys}", keys)
        await store.run(lambda client, sql=sql: client.command(sql, settings=derive.QUERY_SETTINGS))
    timings["derive_rollup_hour_s"] = time.perf_counter() - began
    await store.command("OPTIMIZE TABLE usage_rollup_minute FINAL")
    await store.command("OPTIMIZE TABLE usage_rollup_hour FINAL")
    return {key: round(value, 1) for key, value in timings.items()}


async def timed(work: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    value = await work
    return (time.perf_counter() - began) * 1000, value


async def main(calls: int, rounds: int) -> dict[str, Any]:
    facts = machine()
    directory = tempfile.mkdtemp(prefix="bench-usage-")
    dsn = f"chdb://{directory}"
    print(f"chDB directory (left behind for bench/usage_variants.py): {directory}", flush=True)
    settings = Settings(clickhouse_dsn=dsn, kafka_bootstrap=None)
    store = Store(dsn, threads=settings.store_threads)
    await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
    key = (await create_api_key(store, "acme")).key
    build_timings = await build(store, calls)
    sizes = {
        table: (await store.query(f"SELECT count() FROM {table}"))[0][0]
        for table in ("usage", "usage_by_minute", "usage_rollup_minute", "usage_rollup_hour")
    }
    print(f"built {sizes} in {build_timings}", flush=True)
    results: dict[str, Any] = {}
    app = create_app(settings, store=store, bus=MemoryBus())
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for name, shape in _QUERIES.items():
            body = {"from": FROM, "to": TO, "measures": MEASURES, **shape}
            api_ms: list[float] = []
            raw_ms: list[float] = []
            health_ms: list[float] = []
            api_rows: list[dict[str, Any]] = []
            raw_rows: list[tuple[Any, ...]] = []
            for _ in range(rounds):
                elapsed, response = await timed(client.post("/v1/usage/query", json=body, headers={"X-API-KEY": key}))
                assert response.status_code == 200, response.text
                api_ms.append(elapsed)
                api_rows = response.json()["rows"]
                elapsed, raw_rows = await timed(store.query(_RAW[name]))
                raw_ms.append(elapsed)
                elapsed, _ = await timed(client.get("/healthz"))
                health_ms.append(elapsed)
            assert len(api_rows) == len(raw_rows), (len(api_rows), len(raw_rows))
            assert sum(row["calls"] for row in api_rows) == sum(row[2] for row in raw_rows)
            assert sum(row["input_tokens"] for row in api_rows) == sum(row[3] for row in raw_rows)
            exact = await store.query(_EXACT_P95[name])
            errors = [abs(row["latency_p95"] - want[2]) / want[2] for row, want in zip(api_rows, exact, strict=True)]
            results[name] = {
                "request": body,
                "rows": len(api_rows),
                "api_ms": percentiles(api_ms),
                "raw_scan_sql_ms": percentiles(raw_ms),
                "healthz_ms": percentiles(health_ms),
                "api_over_raw_p50": round(statistics.median(api_ms) / statistics.median(raw_ms), 3),
                "latency_p95_relative_error": {
                    "max": round(max(errors), 6),
                    "mean": round(statistics.fmean(errors), 6),
                    "bound": RELATIVE_ERROR,
                },
                "target_p50_ms": 200,
                "target_met": statistics.median(api_ms) <= 200,
            }
            print(name, results[name]["api_ms"], results[name]["raw_scan_sql_ms"], flush=True)
    store.close()
    return {
        "benchmark": "usage",
        "machine": facts,
        "load_avg_at_end": [round(value, 2) for value in os.getloadavg()],
        "chdb_directory": directory,
        "calls": calls,
        "days": 30,
        "table_rows": sizes,
        "rollup_rows_per_call": round(sizes["usage_rollup_minute"] / sizes["usage"], 3),
        "hour_rollup_rows_per_call": round(sizes["usage_rollup_hour"] / sizes["usage"], 5),
        "build": build_timings,
        "rounds": rounds,
        "results": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    write_result("usage", asyncio.run(main(args.calls, args.rounds)))
