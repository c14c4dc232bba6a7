"""Pagination: the detail API's keyset span pages on one execution of 100,000 spans, first to last page,
beside the same ORDER BY fetched with LIMIT/OFFSET in SQL (the baseline keyset pagination replaces).

The execution is the 100k-span generator of tests/big_execution.py, ingested through the consumer's
own path (decode → rows → writer) into a fresh chDB directory; the API is `create_app` on a real uvicorn
server in this process (chDB allows one process per data directory). For each page size (100 and 1000) and
each depth (0 %, 10 %, ..., 100 % of the pages) it times, interleaved over --rounds rounds:

- api_keyset: GET /v1/workflow-executions/{id}/detail?span_limit=L&prev_span_id=<last span of the page before>
  (the whole request: auth, header, cursor lookup, page, span events, JSON);
- sql_keyset: the page-order query alone (`execution_reads._PAGE_ORDER` on `span_order`, with the cursor condition);
- sql_offset: the same ORDER BY with `LIMIT L OFFSET k*L` in SQL.

The ratio last/first of each is the figure (a ratio, so the shared machine's noise cancels).

    PYTHONPATH=$PWD/services:$PWD python bench/pagination.py [--spans 100000] [--rounds 15] [--name pagination]

Writes bench/results/NAME.json and bench/results/NAME.png.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from tests.big_execution import big_execution
from tests.live_server import serve
from tests.store_ingest import ingest

from bench.common import RESULTS, machine, percentiles, write_result
from spanline.api.app import create_app
from spanline.bus.memory import MemoryBus
from spanline.core.config import Settings
from spanline.store import execution_reads
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.model_usage import usage_by_model
from spanline.store.store import Store

DEPTHS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# OFFSET baseline: the same page order, fetched from the spans table itself with LIMIT/OFFSET.
_OFFSET_PAGE = """
SELECT span_id FROM spans FINAL
WHERE org = {org:String} AND execution_id = {execution:UUID}
ORDER BY start_ts, toString(span_id)
LIMIT {limit:UInt32} OFFSET {offset:UInt64}
"""
_KEYSET_PAGE = execution_reads._PAGE_ORDER.replace("{after}", execution_reads._AFTER)


async def timed(work: Any) -> float:
    began = time.perf_counter()
    await work
    return (time.perf_counter() - began) * 1000


async def breakdown(
    store: Store, execution_id: uuid.UUID, order: list[Any], limit: int, last: int, rounds: int
) -> dict[str, dict[str, float]]:
    """The detail handler's reads one by one, first and last page. The handler runs them in two rounds of
    concurrent reads: the header, usage, the root span's events and the page's span ids (the cursor's
    start looked up inside that query); then the page's span rows and their events."""
    out: dict[str, dict[str, float]] = {}
    for label, index in (("first", 0), ("last", last)):
        times: dict[str, list[float]] = {}
        after_span = uuid.UUID(order[index * limit - 1][1]) if index else None
        for _ in range(max(3, rounds // 3)):
            steps: dict[str, Any] = {
                "execution_header": execution_reads.execution(store, "acme", execution_id),
                "usage_by_model": usage_by_model(store, "acme", execution_id, with_cost_only_entries=True),
                "root_events": execution_reads.span_events(store, "acme", execution_id, [execution_id]),
                "page_span_ids": execution_reads.page_span_ids(
                    store, "acme", execution_id, limit, after_span=after_span
                ),
            }
            for name, work in steps.items():
                times.setdefault(name, []).append(await timed(work))
            ids = await execution_reads.page_span_ids(store, "acme", execution_id, limit, after_span=after_span)
            others = [span_id for span_id in ids if span_id != execution_id]
            times.setdefault("span_rows", []).append(
                await timed(execution_reads.span_rows(store, "acme", execution_id, ids))
            )
            times.setdefault("span_events", []).append(
                await timed(execution_reads.span_events(store, "acme", execution_id, others))
            )
        out[label] = {name: round(statistics.median(values), 1) for name, values in times.items()}
    return out


async def main(spans: int, rounds: int, result_name: str = "pagination") -> dict[str, Any]:
    facts = machine()
    dsn = f"chdb://{tempfile.mkdtemp(prefix='bench-pages-')}"
    settings = Settings(clickhouse_dsn=dsn, kafka_bootstrap=None)
    store = Store(dsn, threads=settings.store_threads)
    await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
    key = (await create_api_key(store, "acme")).key
    execution_id = uuid.uuid4()
    payloads, order = big_execution(execution_id, spans)
    began = time.perf_counter()
    await ingest(store, payloads, org="acme", key=str(execution_id).encode())
    ingest_s = time.perf_counter() - began
    parts = await store.query(
        "SELECT count() FROM system.parts WHERE active AND table = 'spans' AND database = currentDatabase()"
    )

    scope = {"org": "acme", "execution": execution_id}
    results: dict[str, Any] = {}
    app = create_app(settings, store=store, bus=MemoryBus())
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        url = f"/v1/workflow-executions/{execution_id}/detail"
        headers = {"X-API-KEY": key}
        for limit in (100, 1000):
            pages = -(-spans // limit)
            indexes = sorted({round(depth * (pages - 1)) for depth in DEPTHS})
            samples: dict[str, dict[int, list[float]]] = {
                name: {index: [] for index in indexes} for name in ("api_keyset", "sql_keyset", "sql_offset")
            }
            for index in indexes:  # check once that the API page is the expected one
                params: dict[str, Any] = {"span_limit": limit}
                if index:
                    params["prev_span_id"] = order[index * limit - 1][1]
                page = (await client.get(url, params=params, headers=headers)).json()["spans"]
                expected = [span_id for _, span_id in order[index * limit : (index + 1) * limit]]
                assert [span["span_id"] for span in page] == expected, f"page {index} of {limit} differs"
            for _ in range(rounds):
                for index in indexes:
                    params = {"span_limit": limit}
                    if index:
                        params["prev_span_id"] = order[index * limit - 1][1]
                    samples["api_keyset"][index].append(await timed(client.get(url, params=params, headers=headers)))
                    if index:
                        cursor_ts, cursor_span = order[index * limit - 1]
                        keyset = store.query(
                            _KEYSET_PAGE, {**scope, "limit": limit, "cursor_ts": cursor_ts, "cursor_span": cursor_span}
                        )
                    else:
                        first_page = execution_reads._PAGE_ORDER.replace("{after}", "")
                        keyset = store.query(first_page, {**scope, "limit": limit})
                    samples["sql_keyset"][index].append(await timed(keyset))
                    offset = store.query(_OFFSET_PAGE, {**scope, "limit": limit, "offset": index * limit})
                    samples["sql_offset"][index].append(await timed(offset))
            first, last = indexes[0], indexes[-1]
            per_limit: dict[str, Any] = {"pages": pages, "page_indexes": indexes}
            for name, by_index in samples.items():
                medians = {index: statistics.median(values) for index, values in by_index.items()}
                middle = indexes[len(indexes) // 2]
                per_limit[name] = {
                    "first": percentiles(by_index[first]),
                    "middle": percentiles(by_index[middle]),
                    "last": percentiles(by_index[last]),
                    "median_ms_by_page": {str(index): round(value, 3) for index, value in medians.items()},
                    "last_over_first_p50": round(medians[last] / medians[first], 3),
                }
            per_limit["api_breakdown_p50_ms"] = await breakdown(store, execution_id, order, limit, pages - 1, rounds)
            results[f"span_limit_{limit}"] = per_limit
    store.close()

    ratio = results["span_limit_1000"]["api_keyset"]["last_over_first_p50"]
    ratio_100 = results["span_limit_100"]["api_keyset"]["last_over_first_p50"]
    result = {
        "benchmark": "pagination",
        "machine": facts,
        "spans": spans,
        "events_ingested": len(payloads),
        "ingest_seconds": round(ingest_s, 1),
        "active_parts_spans_table": parts[0][0],
        "rounds": rounds,
        "results": results,
        "target": "API last page / first page <= 1.5 at 100,000 spans",
        "api_last_over_first_limit_100": ratio_100,
        "api_last_over_first_limit_1000": ratio,
        "target_met": max(ratio, ratio_100) <= 1.5,
    }
    write_result(result_name, result)
    plot(results, spans, RESULTS / f"{result_name}.png")
    return result


def plot(results: dict[str, Any], spans: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    for axis, limit in zip(axes, (100, 1000), strict=True):
        data = results[f"span_limit_{limit}"]
        for name, style in (("api_keyset", "o-"), ("sql_keyset", "s-"), ("sql_offset", "^--")):
            medians = data[name]["median_ms_by_page"]
            xs = [int(index) * limit for index in medians]
            axis.plot(xs, list(medians.values()), style, label=name.replace("_", " "))
        axis.set_title(f"span_limit={limit}, {spans:,} spans")
        axis.set_xlabel("page start (spans skipped)")
        axis.set_ylabel("median latency (ms)")
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Detail API pages: keyset vs OFFSET by depth")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--name", default="pagination", help="results file name (bench/results/NAME.json, .png)")
    args = parser.parse_args()
    outcome = asyncio.run(main(args.spans, args.rounds, args.name))
    print({key: outcome[key] for key in ("api_last_over_first_limit_100", "api_last_over_first_limit_1000")})
