"""Shared fixtures: one real Kafka broker and one chDB directory per test session; a fresh
ClickHouse database per test, dropped after it. Set SPANLINE_TEST_CLICKHOUSE_DSN=http://host:8123 to use a
server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from spanline.core.config import Settings
from spanline.store.client import create_clickhouse_client
from spanline.store.migrations import apply_migrations
from spanline.store.store import Store
from tests.big_execution import StoredExecution, store_big_execution
from tests.kafka.broker import KafkaBroker
from tests.openai_stub import StubServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Hypothesis: "ci" (the default) and "nightly" (HYPOTHESIS_PROFILE=nightly), README "Tests". Examples write to
# chDB, so no per-example deadline; shrinking stays on, and a failure prints the blob to reproduce it with.
_PROFILE = {"deadline": None, "print_blob": True, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=200, **_PROFILE)  # type: ignore[arg-type]
settings.register_profile("nightly", max_examples=2000, **_PROFILE)  # type: ignore[arg-type]
settings.register_profile("dev", max_examples=20, **_PROFILE)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLES_DIR = PROJECT_ROOT / "tests" / "data" / "events"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    broker = KafkaBroker()
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def stub_server() -> Iterator[StubServer]:
    """A small OpenAI-compatible server on 127.0.0.1 (tests/openai_stub.py)."""
    server = StubServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def clickhouse_base_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    server = os.environ.get("SPANLINE_TEST_CLICKHOUSE_DSN")
    if server:
        return server.rstrip("/")
    return "chdb://" + str(tmp_path_factory.mktemp("chdb"))


def dsn_with_database(base: str, database: str) -> str:
    if base.startswith("chdb://"):
        return f"{base}?database={database}"
    return f"{base}/{database}"


def drop_database(base: str, database: str) -> None:
    client = create_clickhouse_client(base)
    try:
        client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    finally:
        client.close()


@contextmanager
def fresh_database(base: str, prefix: str = "t") -> Iterator[str]:
    """The DSN of a new database, dropped on exit: in chDB every DDL statement costs more with every table
    the session holds, so a suite that kept each test's tables would spend most of its time making more."""
    database = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield dsn_with_database(base, database)
    finally:
        drop_database(base, database)


@pytest.fixture
def clickhouse_dsn(clickhouse_base_dsn: str) -> Iterator[str]:
    with fresh_database(clickhouse_base_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def big_execution_100k(clickhouse_base_dsn: str) -> Iterator[StoredExecution]:
    """One 100,000-span execution in a database of its own, built once for the tests that page through it
    (they read it; the page-cost test also merges its parts, which changes no row)."""
    with fresh_database(clickhouse_base_dsn, "big") as dsn:
        yield store_big_execution(dsn, PROJECT_ROOT / "schemas" / "clickhouse")


@pytest.fixture
async def store(clickhouse_dsn: str) -> AsyncIterator[Store]:
    store = Store(clickhouse_dsn, threads=2)
    await store.run(lambda client: apply_migrations(client, PROJECT_ROOT / "schemas" / "clickhouse"))
    yield store
    store.close()


@pytest.fixture
def settings(clickhouse_dsn: str) -> Settings:
    return Settings(clickhouse_dsn=clickhouse_dsn, kafka_bootstrap=None)
