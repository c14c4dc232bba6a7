"""The `spanline` command: one sub-command per service or chore; each builds what it needs and runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
import uvicorn
from pydantic import ValidationError

from spanline.api.app import create_app
from spanline.bus.factory import create_bus, ensure_topics
from spanline.consumer.metrics import ConsumerMetrics
from spanline.consumer.service import SERVING_GEN0_THRESHOLD, run_consumer, tune_gc_for_batches
from spanline.core.config import Settings
from spanline.core.logging import configure_logging
from spanline.events.json_schema import render, write_event_schemas
from spanline.events.workflow_definition import workflow_json_schema
from spanline.executor.examples import load_examples
from spanline.executor.sandbox.selection import RefusingSandbox, open_code_sandbox
from spanline.executor.service import run as run_executor_service
from spanline.executor.service import run_executor
from spanline.store.api_keys import KeyNotFoundError, create_api_key, list_api_keys, revoke_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

T = TypeVar("T")

app = typer.Typer(
    help="spanline: streaming trace and event pipeline for LLM workflow executions.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
schemas_app = typer.Typer(help="Generated schemas.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(f"SPANLINE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        typer.echo(f"spanline: bad configuration: {problems}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(settings.log_level)
    return settings


async def migrate_store(store: Store, settings: Settings) -> list[str]:
    applied = await store.run(lambda client: apply_migrations(client, settings.schemas_dir / "clickhouse"))
    return [f"{migration.version:04d}_{migration.name}" for migration in applied]


@app.command()
def migrate() -> None:
    """Apply the ClickHouse migrations in schemas/clickhouse (safe to run twice)."""
    settings = load_settings()

    async def run() -> list[str]:
        store = Store(settings.clickhouse_dsn, threads=1)
        try:
            return await migrate_store(store, settings)
        finally:
            store.close()

    applied = asyncio.run(run())
    typer.echo(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")


def on_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run `work` on the migrated store of SPANLINE_CLICKHOUSE_DSN (a chDB directory is one process's:
    not while a server uses it)."""

    async def run() -> T:
        store = Store(settings.clickhouse_dsn, threads=1)
        try:
            await migrate_store(store, settings)
            return await work(store)
        finally:
            store.close()

    return asyncio.run(run())


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="the organization the key belongs to")],
    name: Annotated[str, typer.Option("--name", help="a label for the key")] = "",
) -> None:
    """Create an API key for an organization and print it (it is shown only this once)."""
    settings = load_settings()
    typer.echo(on_store(settings, lambda store: create_api_key(store, org, name)).key)


def _moment(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option("--org", help="the organization whose keys to list")]) -> None:
    """An organization's keys: prefix, name, created, revoked (never the key itself)."""
    keys = on_store(load_settings(), lambda store: list_api_keys(store, org))
    if not keys:
        typer.echo(f"no keys for organization {org!r}")
        return
    rows = [("PREFIX", "CREATED", "REVOKED", "NAME")]
    rows += [(key.prefix, _moment(key.created_at), _moment(key.revoked_at), key.name) for key in keys]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        typer.echo("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]]).rstrip())


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="the key's prefix, as `spanline keys list` shows it")],
    org: Annotated[str | None, typer.Option("--org", help="only a key of this organization")] = None,
) -> None:
    """Revoke a key: API processes refuse it once their cache of it expires (SPANLINE_API_KEY_CACHE_SECONDS)."""
    settings = load_settings()
    try:
        key = on_store(settings, lambda store: revoke_api_key(store, prefix, org=org))
    except KeyNotFoundError as exc:
        typer.echo(f"spanline: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"revoked {key.prefix} (organization {key.org!r}) at {_moment(key.revoked_at)}; API processes refuse it "
        f"within {settings.api_key_cache_seconds:g} s"
    )


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Option(help="where to write")] = Path("schemas/events"),
) -> None:
    """Write the JSON Schemas of the event contract and of workflow definitions, generated from the models."""
    for path in write_event_schemas(directory):
        typer.echo(str(path))
    workflow_schema = directory.parent / "workflows" / "workflow.json"
    workflow_schema.parent.mkdir(parents=True, exist_ok=True)
    workflow_schema.write_text(render(workflow_json_schema()))
    typer.echo(str(workflow_schema))


@topics_app.command("create")
def topics_create() -> None:
    """Create the events, DLQ and executions topics on Kafka (SPANLINE_TOPIC_PARTITIONS partitions)."""
    settings = load_settings()
    if not settings.kafka_bootstrap:
        typer.echo("spanline: SPANLINE_KAFKA_BOOTSTRAP is not set", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        bus = create_bus(settings)
        try:
            await ensure_topics(bus, settings)
        finally:
            await bus.close()

    asyncio.run(run())
    typer.echo("topics ready")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="bind address (SPANLINE_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (SPANLINE_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API."""
    settings = load_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def executor() -> None:
    """Run workflows from spanline.executions (a consumer-group member; needs SPANLINE_KAFKA_BOOTSTRAP)."""
    settings = load_settings()
    if not settings.kafka_bootstrap:
        typer.echo(
            "spanline: the executor service needs SPANLINE_KAFKA_BOOTSTRAP (spanline dev runs one in-process)", err=True
        )
        raise typer.Exit(2)
    asyncio.run(run_executor_service(settings))


@app.command()
def consumer() -> None:
    """Consume spanline.events into ClickHouse (runs, spans, usage, rollups) until SIGTERM."""
    from spanline.consumer.service import run as run_consumer

    asyncio.run(run_consumer(load_settings()))


@app.command()
def replay(
    page_size: Annotated[int, typer.Option(help="raw events per batch")] = 20_000,
) -> None:
    """Rebuild the derived tables (spans, runs, usage, rollups) from the stored raw events."""
    from rich.progress import Progress

    from spanline.consumer.replay import replay_from_events

    settings = load_settings()

    async def run() -> int:
        store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
        try:
            await migrate_store(store, settings)
            with Progress() as progress:
                task = progress.add_task("replaying events", total=None)
                return await replay_from_events(
                    store,
                    page_size=page_size,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
        finally:
            store.close()

    typer.echo(f"replayed {asyncio.run(run())} events")


@app.command()
def totals() -> None:
    """Print the consumer's whole-store totals (events, runs, spans, tokens, cost, rollups) as JSON."""
    import json

    from spanline.consumer.readback import totals as read_totals

    settings = load_settings()

    async def run() -> dict[str, object]:
        store = Store(settings.clickhouse_dsn, threads=1)
        try:
            await migrate_store(store, settings)
            return await read_totals(store)
        finally:
            store.close()

    typer.echo(json.dumps(asyncio.run(run()), default=str))


@app.command()
def dev(
    host: Annotated[str | None, typer.Option(help="bind address (SPANLINE_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (SPANLINE_API_PORT)")] = None,
) -> None:
    """Everything in one process on the embedded defaults: migrations, the example workflows and a key
    for the default organization, an executor, and the API (in-process bus unless SPANLINE_KAFKA_BOOTSTRAP
    is set; embedded ClickHouse unless SPANLINE_CLICKHOUSE_DSN names a server)."""
    settings = load_settings()

    async def run() -> None:
        store = Store(settings.clickhouse_dsn, threads=settings.store_threads)
        bus = create_bus(settings)
        try:
            await migrate_store(store, settings)
            await ensure_topics(bus, settings)
            examples = await load_examples(store, settings.default_org)
            code_sandbox = await open_code_sandbox(settings)
            key = await create_api_key(store, settings.default_org, "spanline dev")
            bind_host, bind_port = host or settings.api_host, port or settings.api_port
            base = f"http://{bind_host}:{bind_port}"
            typer.echo(f"spanline dev: API on {base} (docs at /docs), web UI at {base}/ (sign in with the key below)")
            typer.echo(f"spanline dev: API key for organization {settings.default_org!r}: {key.key}")
            if isinstance(code_sandbox, RefusingSandbox):
                typer.echo(f"spanline dev: !!! {code_sandbox.reason} (runs with a code node are rejected)")
            else:
                typer.echo(f"spanline dev: code nodes run in {code_sandbox.name}")
            typer.echo(f"spanline dev: workflows: {', '.join(workflow.name for workflow in examples)}; try")
            typer.echo(
                f"  curl -N -H 'X-API-KEY: {key.key}' -H 'Content-Type: application/json' "
                f'-d \'{{"inputs": {{"question": "why keys?"}}}}\' '
                f"{base}/v1/workflow-deployments/research/execute-stream"
            )
            stopping = asyncio.Event()
            executor_task = asyncio.create_task(
                run_executor(settings, bus=bus, stop=stopping, code_sandbox=code_sandbox), name="executor"
            )
            tune_gc_for_batches(SERVING_GEN0_THRESHOLD)  # the consumer shares the process with live streams
            metrics = ConsumerMetrics()
            consumer = asyncio.create_task(
                run_consumer(settings, store=store, bus=bus, metrics=metrics, stop=stopping), name="consumer"
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, store=store, bus=bus, consumer_metrics=metrics),
                    host=bind_host,
                    port=bind_port,
                    log_level=settings.log_level.lower(),
                )
            )
            try:
                await server.serve()
            finally:
                stopping.set()
                await executor_task
                await consumer
        finally:
            await bus.close()
            store.close()

    asyncio.run(run())


if __name__ == "__main__":
    app()
