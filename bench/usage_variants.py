"""Where the usage query's time goes: the API's SQL on the rollups (hour tier for whole hours, minute tier
for the edges), then the same from the minute tier alone, each with and without the latency quantiles and
without FINAL, on the chDB directory a `bench/usage.py` run left behind.

    PYTHONPATH=$PWD/services:$PWD python bench/usage_variants.py /tmp/bench-usage-XXXX [--rounds 10]

Writes bench/results/usage_variants.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bench.common import machine, percentiles, write_result
from spanline.store.store import Store
from spanline.store.usage_queries import build_usage_sql, parse_usage_query

MEASURES = ["calls", "input_tokens", "output_tokens", "cost_usd", "latency_p95"]


async def main(directory: str, rounds: int) -> dict[str, Any]:
    facts = machine()
    store = Store(f"chdb://{directory}", threads=2)
    out: dict[str, Any] = {}
    for shape, dimensions, granularity in (("model_day", ["model"], "day"), ("workflow_hour", ["workflow_id"], "hour")):
        variants: dict[str, tuple[str, dict[str, Any]]] = {}
        for tier, hour_tier in (("api_sql", True), ("minute_tier_only", False)):
            for suffix, measures in (("", MEASURES), ("_no_latency_quantiles", MEASURES[:-1])):
                query = parse_usage_query(
                    start=datetime(2026, 10, 1, tzinfo=UTC),
                    end=datetime(2026, 10, 31, tzinfo=UTC),
                    dimensions=dimensions,
                    measures=measures,
                    granularity=granularity,
                    limit=10_000,
                )
                sql, parameters = build_usage_sql(query, "acme", hour_tier=hour_tier)
                variants[f"{tier}{suffix}"] = (sql, parameters)
                variants[f"{tier}{suffix}_without_final"] = (sql.replace(" FINAL", ""), parameters)
        timings: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(rounds):
            for label, (sql, parameters) in variants.items():
                began = time.perf_counter()
                await store.query(sql, parameters)
                timings[label].append((time.perf_counter() - began) * 1000)
        base = statistics.median(timings["api_sql"])
        out[shape] = {
            label: {**percentiles(values), "over_api_sql_p50": round(statistics.median(values) / base, 3)}
            for label, values in timings.items()
        }
        out[shape]["api_sql_text"] = variants["api_sql"][0]
        print(shape, {label: out[shape][label]["p50"] for label in timings}, flush=True)
    store.close()
    return {
        "benchmark": "usage_variants",
        "machine": facts,
        "load_avg_at_end": [round(value, 2) for value in os.getloadavg()],
        "rounds": rounds,
        "results": out,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    write_result("usage_variants", asyncio.run(main(args.directory, args.rounds)))
