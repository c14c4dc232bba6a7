"""POST /v1/usage/query answers what a brute-force pass over the generated events' usage_result says,
for random dimension x measure x granularity x filter x range combinations, scoped to the caller's
organization; bad queries get a 422 that names what is wrong."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from spanline.core.config import Settings
from spanline.store import latency_sketch
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import Call, api_client, calls_of, generate_executions, ingest
from tests.refusals import assert_refused_naming

START = datetime(2026, 10, 29, 22, 0, tzinfo=UTC)  # a Thursday: the data crosses a week and a month boundary
DAYS = 5
ORGS = ("acme", "globex", None)
DIMENSIONS = ("model", "provider", "workflow_id", "workflow_name", "status")
MEASURES = (
    "input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens", "cost_usd", "calls",
    "failed_calls", "executions", "latency_avg", "latency_p50", "latency_p95", "latency_p99",
)  # fmt: skip
GRANULARITIES = (None, "minute", "hour", "day", "week", "month")


def bucket_of(granularity: str, minute: datetime) -> datetime:
    if granularity == "minute":
        return minute
    if granularity == "hour":
        return minute.replace(minute=0)
    day = minute.replace(hour=0, minute=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _latency(level: float) -> Callable[[list[Call]], float | None]:
    """What the sketch answers: the nearest-rank quantile of the calls' log buckets (store/latency_sketch.py).
    `assert_latency_bound` separately checks it against the exact quantile of the raw latencies."""
    return lambda calls: latency_sketch.quantile_ms(latency_sketch.histogram_of(c.compute_nanos for c in calls), level)


BRUTE_MEASURES: dict[str, Callable[[list[Call]], Any]] = {
    "input_tokens": lambda calls: sum(c.input_tokens for c in calls),
    "output_tokens": lambda calls: sum(c.output_tokens for c in calls),
    "total_tokens": lambda calls: sum(c.input_tokens + c.output_tokens for c in calls),
    "cache_read_tokens": lambda calls: sum(c.cache_read_tokens for c in calls),
    "cache_write_tokens": lambda calls: sum(c.cache_write_tokens for c in calls),
    "cost_usd": lambda calls: sum((c.cost_usd for c in calls), Decimal(0)),
    "calls": len,
    "failed_calls": lambda calls: sum(c.status == "REJECTED" for c in calls),
    "executions": lambda calls: len({c.execution_id for c in calls}),
    "latency_avg": lambda calls: sum(c.compute_nanos for c in calls) / len(calls) / 1e6 if calls else None,
    "latency_p50": _latency(0.5),
    "latency_p95": _latency(0.95),
    "latency_p99": _latency(0.99),
}


def groups_of(calls: Sequence[Call], org: str, query: dict[str, Any]) -> dict[tuple[Any, ...], list[Call]]:
    """The calls of each answer row, keyed by (bucket?, dimension values...)."""
    start, end = (datetime.fromisoformat(query[key]) for key in ("from", "to"))
    filters = {name: [value] if isinstance(value, str) else value for name, value in query.get("filters", {}).items()}
    granularity = query.get("granularity")
    groups: dict[tuple[Any, ...], list[Call]] = defaultdict(list)
    for call in calls:
        if call.org != org or not start <= call.minute < end:
            continue
        if any(getattr(call, name) not in values for name, values in filters.items()):
            continue
        key = tuple(getattr(call, name) for name in query["dimensions"])
        if granularity:
            key = (bucket_of(granularity, call.minute).strftime("%Y-%m-%dT%H:%M:%SZ"), *key)
        groups[key].append(call)
    if not granularity and not query["dimensions"]:
        groups.setdefault((), [])  # the totals row is there even when nothing matched
    return groups


def brute_force(calls: Sequence[Call], org: str, query: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Rows keyed by (bucket?, dimension values...), from the raw calls."""
    groups = groups_of(calls, org, query)
    return {key: {m: BRUTE_MEASURES[m](group) for m in query["measures"]} for key, group in groups.items()}


LATENCY_LEVELS = {"latency_p50": 0.5, "latency_p95": 0.95, "latency_p99": 0.99}


def assert_latency_bound(groups: dict[tuple[Any, ...], list[Call]], got: dict[tuple[Any, ...], dict[str, Any]]) -> None:
    """Latency quantiles are within the sketch's relative error of the exact nearest-rank quantile."""
    for key, group in groups.items():
        for name, level in LATENCY_LEVELS.items():
            if name not in got[key] or not group:
                continue
            exact = latency_sketch.nearest_rank([c.compute_nanos / 1e6 for c in group], level)
            assert abs(got[key][name] - exact) <= latency_sketch.RELATIVE_ERROR * exact * (1 + 1e-9), (key, name)


def answered(query: dict[str, Any], rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    keyed: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        assert set(row) == {*query["dimensions"], *query["measures"]} | (
            {"bucket"} if query.get("granularity") else set()
        )
        key = tuple(row[name] for name in query["dimensions"])
        if query.get("granularity"):
            key = (row["bucket"], *key)
        assert key not in keyed, f"two rows for {key}"
        keyed[key] = {m: row[m] for m in query["measures"]}
    return keyed


def assert_same(expected: dict[tuple[Any, ...], dict[str, Any]], got: dict[tuple[Any, ...], dict[str, Any]]) -> None:
    assert set(got) == set(expected)
    for key, measures in expected.items():
        for name, want in measures.items():
            value = got[key][name]
            if want is None:
                assert value is None, (key, name)
            elif isinstance(want, Decimal):
                assert value == pytest.approx(float(want), abs=1e-9), (key, name)
            elif isinstance(want, float):
                assert value == pytest.approx(want, rel=1e-9, abs=1e-6), (key, name)
            else:
                assert value == want, (key, name)


def random_query(rng: random.Random, calls: Sequence[Call]) -> dict[str, Any]:
    dimensions = rng.sample(DIMENSIONS, rng.randint(0, 3))
    measures = rng.sample(MEASURES, rng.randint(1, 5))
    if rng.random() < 0.5:  # bounds on minutes that have calls: the edges must be [from, to)
        first, last = sorted(rng.sample(sorted({call.minute for call in calls}), 2))
    else:
        first = START + timedelta(seconds=rng.randint(0, DAYS * 86_400 // 2))
        last = first + timedelta(seconds=rng.randint(60, DAYS * 86_400))
    query: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat(), "dimensions": dimensions}
    query["measures"] = measures
    granularity = rng.choice(GRANULARITIES)
    if granularity:
        query["granularity"] = granularity
    if rng.random() < 0.6:
        name = rng.choice(DIMENSIONS)
        seen = sorted({str(getattr(call, name)) for call in calls})
        values = rng.sample(seen, rng.randint(1, min(2, len(seen))))
        query["filters"] = {name: values[0] if len(values) == 1 and rng.random() < 0.5 else values}
    return query


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_queries_equal_a_brute_force_over_the_raw_events(
    settings: Settings, store: Store, seed: int
) -> None:
    rng = random.Random(seed)
    executions = generate_executions(rng, 45, orgs=ORGS, start=START, days=DAYS)
    await ingest(store, executions)
    calls = calls_of(executions)
    assert {c.org for c in calls} == {"acme", "globex", "default"}
    assert any(c.status == "REJECTED" for c in calls)
    keys = {org: (await create_api_key(store, org)).key for org in ("acme", "globex")}
    fixed = [
        {"dimensions": [], "measures": list(MEASURES)},
        {"dimensions": ["model", "provider"], "measures": list(MEASURES), "granularity": "day"},
        {"dimensions": ["status"], "measures": list(MEASURES), "granularity": "week"},
        {"dimensions": ["workflow_id", "workflow_name"], "measures": ["calls", "cost_usd"], "granularity": "month"},
        {"dimensions": ["model"], "measures": ["latency_p95", "calls"], "filters": {"status": "REJECTED"}},
    ]
    whole = {"from": START.isoformat(), "to": (START + timedelta(days=DAYS)).isoformat()}
    queries = [{**whole, **query} for query in fixed] + [random_query(rng, calls) for _ in range(14)]
    async with api_client(settings, store) as client:
        for org, key in keys.items():
            for query in queries:
                response = await client.post("/v1/usage/query", json=query, headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 200, (query, response.text)
                body = response.json()
                assert body["truncated"] is False
                got = answered(query, body["rows"])
                assert_same(brute_force(calls, org, query), got)
                assert_latency_bound(groups_of(calls, org, query), got)
                if query.get("granularity"):
                    buckets = [row["bucket"] for row in body["rows"]]
                    assert buckets == sorted(buckets)


async def test_a_limit_cuts_the_ordered_rows_and_says_so(settings: Settings, store: Store) -> None:
    rng = random.Random(7)
    executions = generate_executions(rng, 30, orgs=["acme"], start=START, days=DAYS)
    await ingest(store, executions)
    key = (await create_api_key(store, "acme")).key
    query = {
        "from": START.isoformat(),
        "to": (START + timedelta(days=DAYS)).isoformat(),
        "dimensions": ["model"],
        "measures": ["calls"],
        "granularity": "hour",
    }
    async with api_client(settings, store) as client:
        full = (await client.post("/v1/usage/query", json=query, headers={"X-API-KEY": key})).json()
        assert len(full["rows"]) > 5 and full["truncated"] is False
        cut = (await client.post("/v1/usage/query", json={**query, "limit": 5}, headers={"X-API-KEY": key})).json()
        assert cut == {"rows": full["rows"][:5], "truncated": True}
        exact = len(full["rows"])
        fits = await client.post("/v1/usage/query", json={**query, "limit": exact}, headers={"X-API-KEY": key})
        assert fits.json() == full


async def test_another_organization_sees_none_of_the_data(settings: Settings, store: Store) -> None:
    rng = random.Random(11)
    await ingest(store, generate_executions(rng, 10, orgs=["acme"], start=START, days=1))
    outsider = (await create_api_key(store, "initech")).key
    query = {
        "from": START.isoformat(),
        "to": (START + timedelta(days=2)).isoformat(),
        "dimensions": [],
        "measures": ["calls", "input_tokens", "cost_usd", "executions", "latency_p50"],
    }
    async with api_client(settings, store) as client:
        totals = await client.post("/v1/usage/query", json=query, headers={"X-API-KEY": outsider})
        assert totals.json() == {
            "rows": [{"calls": 0, "input_tokens": 0, "cost_usd": 0.0, "executions": 0, "latency_p50": None}],
            "truncated": False,
        }
        grouped = await client.post(
            "/v1/usage/query", json={**query, "dimensions": ["status"]}, headers={"X-API-KEY": outsider}
        )
        assert grouped.json() == {"rows": [], "truncated": False}
        assert (await client.post("/v1/usage/query", json=query)).status_code == 401


async def _refusal(client: httpx.AsyncClient, key: str, **changes: Any) -> str:
    query: dict[str, Any] = {
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-11-02T00:00:00Z",
        "dimensions": ["model"],
        "measures": ["calls"],
    }
    query.update(changes)
    response = await client.post("/v1/usage/query", json=query, headers={"X-API-KEY": key})
    return assert_refused_naming(response)


async def test_bad_queries_get_422_naming_each_problem(settings: Settings, store: Store) -> None:
    key = (await create_api_key(store, "acme")).key
    async with api_client(settings, store) as client:
        detail = await _refusal(
            client,
            key,
            dimensions=["model", "colour", "team"],
            measures=["calls", "vibes"],
            filters={"planet": "mars", "model": "x"},
        )
        for name in ("colour", "team", "vibes", "planet"):
            assert name in detail
        assert "dimension" in detail and "measure" in detail and "filter" in detail
        assert "fortnight" in await _refusal(client, key, granularity="fortnight")
        assert "'to'" in await _refusal(client, key, to="2026-11-01T00:00:00Z")
        assert "'to'" in await _refusal(client, key, to="2026-10-31T00:00:00Z")
        assert "limit" in await _refusal(client, key, limit=0)
        assert "limit" in await _refusal(client, key, limit=10_001)
        assert "not-a-uuid" in await _refusal(client, key, filters={"workflow_id": ["not-a-uuid"]})
        assert "measure" in await _refusal(client, key, measures=[])
        assert "from" in await _refusal(client, key, **{"from": "yesterday"})
        assert "colour" in await _refusal(client, key, colour="red")


async def test_a_cost_only_usage_result_adds_cost_but_no_call(settings: Settings, store: Store) -> None:
    """A usage_result with cost and no usage entries (a model-less row) counts in cost_usd, not in calls,
    latency or Interactly's call counts."""
    rng = random.Random(13)
    execution = generate_executions(rng, 1, orgs=["acme"], start=START, days=1)[0]
    calls = calls_of([execution])
    assert calls
    fulfilled = next(
        e for e in execution.events if e["name"] == "node.execution.fulfilled" and "usage_result" not in e["body"]
    )
    fulfilled["body"]["usage_result"] = {"usage": [], "cost": [{"value": 0.5, "unit": "USD"}]}
    await ingest(store, [execution])
    key = (await create_api_key(store, "acme")).key
    query = {
        "from": START.isoformat(),
        "to": (START + timedelta(days=2)).isoformat(),
        "dimensions": [],
        "measures": ["calls", "cost_usd", "latency_p50", "input_tokens"],
    }
    want = brute_force(calls, "acme", query)[()]
    want["cost_usd"] += Decimal("0.5")
    async with api_client(settings, store) as client:
        for extra in ({}, {"filters": {"status": ["FULFILLED", "REJECTED"]}}):  # the rollup and the per-call rows
            response = await client.post("/v1/usage/query", json={**query, **extra}, headers={"X-API-KEY": key})
            assert_same({(): want}, answered(query, response.json()["rows"]))
        run = await client.get(f"/workflows/v1/workflow-runs/{execution.execution_id}", headers={"X-API-KEY": key})
        assert run.json()["workflow_run"]["workflow_run"]["llm_token_usage"]["call_count"] == len(calls)
        assert run.json()["workflow_run"]["workflow_run"]["llm_latency_stats"]["call_count"] == len(calls)
