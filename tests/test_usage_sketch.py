"""The usage rollups' latency sketch (store/latency_sketch.py) and hour tier: quantiles within the stated
relative error of the exact ones over many calls with widely spread latencies; the same answer from the
hour tier, the minute tier and the per-call rows; the same rollups whatever the order, duplication and
batching of the events; and migration 0013 converting rollups written before it."""

from __future__ import annotations

import random
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from spanline.bus.interface import BusMessage
from spanline.consumer import derive
from spanline.consumer.decode import AcceptedEvent, decode_message
from spanline.consumer.readback import snapshot
from spanline.consumer.rows import USAGE_COLUMNS, build_rows
from spanline.core.config import Settings
from spanline.store import latency_sketch
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from spanline.store.usage_queries import build_usage_sql, parse_usage_query, shape_rows, whole_hours
from tests.api_data import DEFAULT_ORG, Call, api_client, calls_of, generate_executions, messages_of
from tests.conftest import PROJECT_ROOT, fresh_database
from tests.consumer_events import Execution
from tests.store_ingest import write_messages
from tests.test_usage_query import answered, brute_force, groups_of

MIGRATIONS = PROJECT_ROOT / "schemas" / "clickhouse"
START = datetime(2026, 11, 2, 21, 30, tzinfo=UTC)  # a day from 21:30: partial hours at both ends, a midnight
ALPHA = latency_sketch.RELATIVE_ERROR

# The per-minute copy of the calls, as the consumer of 0012 wrote it (now migration 0019's view).
USAGE_BY_MINUTE_0012 = """
INSERT INTO usage_by_minute
SELECT kafka_partition, org, toStartOfMinute(timestamp), event_id, call_index, execution_id, workflow_id,
    workflow_name, status, model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    compute_nanos, cost_usd
FROM usage
"""

# The consumer's rollup statement before migration 0013 (quantiles reservoir, no hour tier).
ROLLUP_SQL_0012 = """
INSERT INTO usage_rollup_minute
SELECT org, minute, workflow_id, min(workflow_name), model, provider, kafka_partition,
    count(), countIf(status = 'REJECTED'), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
    sum(cache_write_tokens), sum(compute_nanos), sum(cost_usd),
    quantilesState(0.5, 0.95, 0.99)(compute_nanos / 1e6), uniqExactState(execution_id), now64(6)
FROM usage_by_minute FINAL
WHERE (kafka_partition, org, minute) IN ({keys})
GROUP BY org, minute, workflow_id, model, provider, kafka_partition
"""

LATENCY = ["latency_p50", "latency_p95", "latency_p99"]
QUERIES: list[dict[str, Any]] = [
    {"dimensions": [], "measures": ["calls", *LATENCY]},
    {"dimensions": ["model"], "measures": ["calls", *LATENCY], "granularity": "hour"},
    {"dimensions": ["workflow_name", "provider"], "measures": ["calls", "latency_p95"], "granularity": "day"},
    {"dimensions": ["model"], "measures": ["latency_p99", "calls"], "filters": {"provider": "openai"}},
    {"dimensions": [], "measures": LATENCY, "granularity": "minute"},
]
# Whole range, and bounds inside minutes and hours (edge minutes from the minute tier).
RANGES = [
    (START, START + timedelta(days=1, hours=1)),
    (START + timedelta(minutes=17, seconds=30), START + timedelta(hours=20, minutes=3, seconds=1)),
]


def spread_latencies(rng: random.Random, executions: Sequence[Execution]) -> None:
    """Latencies from 0 ns and 0.1 ms up to ~10 min, log-uniform: far wider than the generator's."""
    for execution in executions:
        for event in execution.events:
            for usage in (event["body"].get("usage_result") or {}).get("usage", []):
                nanos = 0 if rng.random() < 0.01 else int(10 ** rng.uniform(5, 11.8))
                usage["ml_model_usage"]["compute_nanos"] = nanos


def scrambled(rng: random.Random, messages: list[BusMessage]) -> list[list[BusMessage]]:
    """The same messages permuted, some produced twice (a later offset), in random batches, one replayed."""
    shuffled = list(messages)
    rng.shuffle(shuffled)
    for message in rng.sample(messages, len(messages) // 10):
        shuffled.insert(rng.randint(0, len(shuffled)), replace(message, offset=message.offset + 1_000_000))
    batches: list[list[BusMessage]] = []
    while shuffled:
        size = rng.randint(1, 900)
        batches.append(shuffled[:size])
        shuffled = shuffled[size:]
    batches.append(rng.choice(batches))
    return batches


async def write_as_0012(store: Store, messages: list[BusMessage]) -> None:
    """What the consumer of migration 0012 left for 0013 to convert: per-call rows and reservoir rollups.
    (Today's writer needs the tables of migration 0019, so the rows are put in place directly.)"""
    decoded = [decode_message(message, default_org=DEFAULT_ORG, max_bytes=1 << 20) for message in messages]
    rows = build_rows([item for item in decoded if isinstance(item, AcceptedEvent)])
    block = b"".join(rows.usage)
    await store.run(lambda client: client.raw_insert("usage", list(USAGE_COLUMNS), block, fmt="RowBinary"))
    await store.command(USAGE_BY_MINUTE_0012)
    sql = ROLLUP_SQL_0012.replace("{keys}", derive.bucket_keys(sorted(rows.buckets)))
    await store.run(lambda client: client.command(sql, settings=derive.QUERY_SETTINGS))


async def write(store: Store, batches: list[list[BusMessage]]) -> None:
    for batch in batches:
        await write_messages(store, batch, batch_size=len(batch), default_org=DEFAULT_ORG)


def request(query: dict[str, Any], start: datetime, end: datetime) -> dict[str, Any]:
    return {"from": start.isoformat(), "to": end.isoformat(), **query}


async def minute_tier_rows(store: Store, org: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The same query answered from the minute rollup alone."""
    query = parse_usage_query(
        start=datetime.fromisoformat(body["from"]),
        end=datetime.fromisoformat(body["to"]),
        dimensions=body["dimensions"],
        measures=body["measures"],
        granularity=body.get("granularity"),
        filters=body.get("filters"),
    )
    sql, parameters = build_usage_sql(query, org, hour_tier=False)
    return shape_rows(query, await store.query(sql, parameters)).rows


def assert_sketch_answer(calls: list[Call], org: str, body: dict[str, Any], rows: list[dict[str, Any]]) -> int:
    """The rows are the sketch's own answer over the calls (tight), and every latency quantile is within ALPHA
    of the exact nearest-rank quantile of the group's latencies. Returns how many quantiles were bounded."""
    got = answered(body, rows)
    want = brute_force(calls, org, body)
    assert got == {key: {m: v if v is None else pytest.approx(v) for m, v in ms.items()} for key, ms in want.items()}
    checked = 0
    for key, group in groups_of(calls, org, body).items():
        for name in set(LATENCY) & set(body["measures"]):
            if group:
                exact = latency_sketch.nearest_rank([c.compute_nanos / 1e6 for c in group], float(name[-2:]) / 100)
                assert abs(got[key][name] - exact) <= ALPHA * exact * (1 + 1e-9), (key, name, got[key][name], exact)
                checked += 1
    return checked


def test_the_sql_spellings_of_the_sketch_agree() -> None:
    """ROLLUP_SQL and migration 0013 spell the bucket function out; they must be latency_sketch's."""
    bucket = latency_sketch.bucket_sql("compute_nanos")
    assert bucket in derive.ROLLUP_SQL
    assert bucket in (MIGRATIONS / "0013_usage_latency_sketch.sql").read_text()
    assert latency_sketch.HISTOGRAM_SQL.replace("\n", " ") in derive.ROLLUP_SQL.replace("\n", " ")
    assert f"{1 + ALPHA} / {1 - ALPHA}" in bucket


def test_whole_hours_are_those_all_of_whose_minutes_count() -> None:
    def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
        return datetime(2026, 11, 2, tzinfo=UTC) + timedelta(hours=hour, minutes=minute, seconds=second)

    assert whole_hours(at(0), at(3)) == (at(0), at(3))
    assert whole_hours(at(0, 0, 1), at(3)) == (at(1), at(3))  # minute 00:00 starts before `from`
    assert whole_hours(at(0, 59, 30), at(2, 59, 1)) == (at(1), at(3))  # minute 02:59 starts before `to`
    assert whole_hours(at(0, 59, 30), at(2, 59)) == (at(1), at(2))
    assert whole_hours(at(0, 10), at(1, 50)) is None
    assert whole_hours(datetime(9999, 12, 31, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC)) is None


@pytest.mark.parametrize("seed", range(5))
def test_the_python_rendering_keeps_the_bound(seed: int) -> None:
    rng = random.Random(seed)
    values = [0 if rng.random() < 0.05 else int(10 ** rng.uniform(0, 12)) for _ in range(rng.randint(1, 3000))]
    for value in values[:200]:
        approx = latency_sketch.bucket_ms(latency_sketch.bucket_of(value))
        assert abs(approx - value / 1e6) <= ALPHA * value / 1e6 * (1 + 1e-12)
    histogram = latency_sketch.histogram_of(values)
    for level in (0.0, 0.01, 0.5, 0.95, 0.99, 1.0, rng.random()):
        exact = latency_sketch.nearest_rank([v / 1e6 for v in values], level)
        got = latency_sketch.quantile_ms(histogram, level)
        assert got is not None and abs(got - exact) <= ALPHA * exact * (1 + 1e-12)
    assert latency_sketch.quantile_ms({}, 0.5) is None


async def test_quantiles_are_within_the_bound_and_agree_across_sources(settings: Settings, store: Store) -> None:
    rng = random.Random(3)
    executions = generate_executions(rng, 500, orgs=["acme"], start=START, days=1)
    spread_latencies(rng, executions)
    calls = calls_of(executions)
    assert len(calls) > 1500
    await write(store, [messages_of(executions)])
    key = (await create_api_key(store, "acme")).key
    checked = 0
    async with api_client(settings, store) as client:
        for start, end in RANGES:
            for query in QUERIES:
                body = request(query, start, end)
                response = await client.post("/v1/usage/query", json=body, headers={"X-API-KEY": key})
                assert response.status_code == 200, response.text
                rows = response.json()["rows"]
                checked += assert_sketch_answer(calls, "acme", body, rows)
                # The minute tier alone, and the per-call rows (a status filter that keeps every call).
                assert await minute_tier_rows(store, "acme", body) == rows
                every = {**body, "filters": {**body.get("filters", {}), "status": ["FULFILLED", "REJECTED"]}}
                raw = await client.post("/v1/usage/query", json=every, headers={"X-API-KEY": key})
                assert raw.json()["rows"] == rows
    assert checked > 100


async def rollup_state(store: Store) -> dict[str, Any]:
    state = await snapshot(store)
    hours_from_minutes = await store.query(
        """SELECT org, toStartOfHour(minute) AS hour, workflow_id, model, provider, sum(calls), sum(failed_calls),
            sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
            sum(compute_nanos), sum(cost_usd), sumMap(latency_hist), uniqExactMerge(executions_state)
        FROM usage_rollup_minute FINAL GROUP BY org, hour, workflow_id, model, provider
        ORDER BY org, hour, workflow_id, model, provider"""
    )
    assert state["rollup_hour"] == hours_from_minutes, "hour rows must be the sums of their minute rows"
    return {"rollup": state["rollup"], "rollup_hour": state["rollup_hour"]}


async def test_order_duplicates_and_batching_leave_the_same_sketches(clickhouse_base_dsn: str) -> None:
    rng = random.Random(8)
    executions = generate_executions(rng, 150, orgs=["acme", "globex"], start=START, days=1)
    spread_latencies(rng, executions)
    messages = messages_of(executions)
    states = []
    for batches in ([messages], scrambled(rng, messages)):
        with fresh_database(clickhouse_base_dsn, "s") as dsn:
            store = Store(dsn, threads=2)
            try:
                await store.run(lambda client: apply_migrations(client, MIGRATIONS))
                await write(store, batches)
                states.append(await rollup_state(store))
            finally:
                store.close()
    assert states[0]["rollup"] and states[0]["rollup_hour"]
    assert states[0] == states[1]


async def test_migration_0013_converts_rollups_written_before_it(
    settings: Settings, clickhouse_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tmp_path / "up_to_0012"
    before.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        if int(path.name[:4]) <= 12:
            shutil.copy(path, before / path.name)
    rng = random.Random(21)
    executions = generate_executions(rng, 160, orgs=["acme"], start=START, days=1)
    spread_latencies(rng, executions)
    first, later = executions[:120], executions[120:]
    store = Store(clickhouse_dsn, threads=2)
    try:
        await store.run(lambda client: apply_migrations(client, before))
        await write_as_0012(store, messages_of(first))
        old = await store.query(
            "SELECT sum(calls), length(quantilesMerge(0.5)(latency_ms_state)) FROM usage_rollup_minute"
        )
        assert old[0][0] == len(calls_of(first)) and old[0][1] == 1
        applied = await store.run(lambda client: apply_migrations(client, MIGRATIONS))
        assert [migration.version for migration in applied] == sorted(
            int(path.name[:4]) for path in MIGRATIONS.glob("*.sql") if int(path.name[:4]) >= 13
        )
        columns = {
            row[0]
            for row in await store.query(
                "SELECT name FROM system.columns WHERE table = 'usage_rollup_minute' AND database = currentDatabase()"
            )
        }
        assert "latency_hist" in columns and "latency_ms_state" not in columns
        await rollup_state(store)  # the backfilled hour tier sums the re-derived minute rows
        key = (await create_api_key(store, "acme")).key
        async with api_client(settings, store) as client:
            for stored in (first, executions):
                if stored is executions:  # the upgraded consumer carries on over the migrated tables
                    await write(store, [messages_of(later)])
                    await rollup_state(store)
                calls = calls_of(stored)
                for start, end in RANGES:
                    for query in QUERIES:
                        body = request(query, start, end)
                        response = await client.post("/v1/usage/query", json=body, headers={"X-API-KEY": key})
                        assert_sketch_answer(calls, "acme", body, response.json()["rows"])
    finally:
        store.close()
