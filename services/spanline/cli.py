"""The `spanline` command: one sub-command per service or chore; each builds what it needs and runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

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
from spanline.store.api_keys import create_api_key
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store

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


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="the organization the key belongs to")],
    name: Annotated[str, typer.Option("--name", help="a label for the key")] = "",
) -> None:
    """Create an API key for an organization and print it (it is shown only this once)."""
    settings = load_settings()

    async def run() -> str:
        store = Store(settings.clickhouse_dsn, threads=1)
        try:
            await migrate_store(store, settings)
            return (await create_api_key(store, org, name)).key
        finally:
            store.close()

    typer.echo(asyncio.run(run()))


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
            typer.echo(f"spanline dev: API on {base} (docs at /docs)")
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
