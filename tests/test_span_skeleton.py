"""The span skeleton (`GET /v1/workflow-executions/{id}/span-skeleton`), the list's time-range filter and a
workflow's definition endpoint, through the API on generated runs written by the consumer's path."""

from __future__ import annotations

import gzip
import random
import uuid
from datetime import UTC, datetime, timedelta

from spanline.core.config import Settings
from spanline.executor.examples import load_examples
from spanline.store.api_keys import create_api_key
from spanline.store.store import Store
from tests.api_data import api_client, generate_executions, ingest, parse_ts, spans_of
from tests.big_run import big_run
from tests.store_ingest import ingest as store_ingest


async def test_the_skeleton_lists_every_span_in_detail_page_order(settings: Settings, store: Store) -> None:
    executions = generate_executions(
        random.Random(7), 12, orgs=["acme", "globex"], start=datetime(2026, 11, 2, tzinfo=UTC), days=1
    )
    await ingest(store, executions)
    keys = {org: (await create_api_key(store, org)).key for org in ("acme", "globex")}
    async with api_client(settings, store) as client:
        for execution in executions:
            org = execution.org or "default"
            url = f"/v1/workflow-executions/{execution.execution_id}/span-skeleton"
            answer = await client.get(url, headers={"X-API-KEY": keys[org]})
            assert answer.status_code == 200, answer.text
            skeleton = answer.json()
            detail = await client.get(
                f"/v1/workflow-executions/{execution.execution_id}/detail",
                params={"span_limit": 1000},
                headers={"X-API-KEY": keys[org]},
            )
            pages = detail.json()["spans"]
            rows = [dict(zip(skeleton["columns"], row, strict=True)) for row in skeleton["spans"]]
            assert [row["span_id"] for row in rows] == [span["span_id"] for span in pages]
            events = spans_of(execution)
            for row, span in zip(rows, pages, strict=True):
                assert row["parent_span_id"] == span["parent_span_id"]
                assert row["label"] == span["attributes"]["label"]
                assert row["kind"] == ("w" if span["name"] == "workflow.execution" else "n")
                start = datetime.fromisoformat(span["start_ts"]).replace(tzinfo=UTC)
                assert skeleton["origin_us"] + row["start_us"] == int(start.timestamp()) * 10**6 + start.microsecond
                terminal = [e for e in events[row["span_id"]] if e["name"].endswith((".fulfilled", ".rejected"))]
                assert row["status"] == (terminal[-1]["name"].rsplit(".", 1)[1].upper() if terminal else "INITIATED")
                assert (row["end_us"] is None) == (not terminal)
            assert skeleton["span_count"] == len(rows)
            assert skeleton["status"] == (await client.get(
                f"/v1/workflows/executions/{execution.execution_id}/status", headers={"X-API-KEY": keys[org]}
            )).json()["status"]  # fmt: skip
            other = "globex" if org == "acme" else "acme"
            assert (await client.get(url, headers={"X-API-KEY": keys[other]})).status_code == 404
        assert (await client.get(url)).status_code == 401


async def test_a_big_skeleton_is_gzipped_when_the_client_accepts_it(settings: Settings, store: Store) -> None:
    execution_id = str(uuid.uuid4())
    payloads, order = big_run(execution_id, batches=10, steps=20)
    await store_ingest(store, payloads, org="acme", key=execution_id.encode())
    key = (await create_api_key(store, "acme")).key
    url = f"/v1/workflow-executions/{execution_id}/span-skeleton"
    async with api_client(settings, store) as client:
        plain = await client.get(url, headers={"X-API-KEY": key, "Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert [row[0] for row in plain.json()["spans"]] == order
        raw = await client.send(
            client.build_request("GET", url, headers={"X-API-KEY": key, "Accept-Encoding": "gzip"}), stream=True
        )
        compressed = b"".join([chunk async for chunk in raw.aiter_raw()])
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.headers["vary"] == "Accept-Encoding"
        assert len(compressed) < len(plain.content) / 3
        assert gzip.decompress(compressed) == plain.content


async def test_the_list_filters_by_start_time(settings: Settings, store: Store) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    executions = generate_executions(random.Random(11), 30, orgs=["acme"], start=start, days=2)
    await ingest(store, executions)
    key = (await create_api_key(store, "acme")).key
    since, until = start + timedelta(hours=12), start + timedelta(hours=36)
    expected = {
        e.execution_id for e in executions if since <= parse_ts(e.events[0]["timestamp"]) < until
    }  # the root's initiated event is the first
    async with api_client(settings, store) as client:
        answer = await client.get(
            "/v1/workflow-executions",
            params={"started_from": since.isoformat(), "started_to": until.strftime("%Y-%m-%dT%H:%M:%S"), "limit": 100},
            headers={"X-API-KEY": key},
        )
        assert answer.status_code == 200, answer.text
        assert {run["execution_id"] for run in answer.json()["results"]} == expected
        none = await client.get("/v1/workflow-executions", params={"external_id": "nope"}, headers={"X-API-KEY": key})
        assert none.json()["results"] == []


async def test_a_workflow_answers_its_definition_graph_and_versions(settings: Settings, store: Store) -> None:
    await load_examples(store, "acme")
    key = (await create_api_key(store, "acme")).key
    other = (await create_api_key(store, "globex")).key
    async with api_client(settings, store) as client:
        listed = (await client.get("/api/v1/workflow/workflows", headers={"X-API-KEY": key})).json()
        research = next(w for w in listed if w["name"] == "research")
        answer = await client.get(f"/api/v1/workflow/workflows/{research['workflow_id']}", headers={"X-API-KEY": key})
        assert answer.status_code == 200
        workflow = answer.json()
        assert [node["id"] for node in workflow["nodes"]] == [node["id"] for node in workflow["definition"]["nodes"]]
        reads = {
            (binding["node"], node["id"])
            for node in workflow["nodes"]
            for binding in node.get("inputs", {}).values()
            if "node" in binding
        }
        assert {(e["source"], e["target"]) for e in workflow["edges"] if e["kind"] == "data"} == reads
        assert any(e["kind"] == "after" and e["port"] for e in workflow["edges"])
        assert workflow["versions"] == [{"version": 1, "created_at": workflow["updated_at"]}]
        hidden = await client.get(f"/api/v1/workflow/workflows/{research['workflow_id']}", headers={"X-API-KEY": other})
        assert hidden.status_code == 404


async def test_list_times_outside_the_store_range_are_clamped_not_errors(settings: Settings, store: Store) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    executions = generate_executions(random.Random(12), 5, orgs=["acme"], start=start, days=1)
    await ingest(store, executions)
    key = (await create_api_key(store, "acme")).key
    async with api_client(settings, store) as client:
        # Found by schemathesis: year 999 reached ClickHouse as a DateTime64 it cannot parse (500).
        every = await client.get(
            "/v1/workflow-executions",
            params={"started_from": "0999-01-01T00:00:00", "started_to": "9999-12-31T23:59:59-05:00", "limit": 100},
            headers={"X-API-KEY": key},
        )
        assert every.status_code == 200, every.text
        assert {run["execution_id"] for run in every.json()["results"]} == {e.execution_id for e in executions}
        after_all = await client.get(
            "/v1/workflow-executions", params={"started_from": "0001-01-01T00:00:00+05:00"}, headers={"X-API-KEY": key}
        )
        assert after_all.status_code == 200, after_all.text
