"""The ClickHouse store: migrations (fresh directory, twice, tamper-proof) and hashed API keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spanline.store.api_keys import create_api_key, hash_key, org_for_key
from spanline.store.client import parse_chdb_dsn
from spanline.store.migrations import MigrationError, apply_migrations, load_migrations
from spanline.store.store import Store
from tests.conftest import PROJECT_ROOT

MIGRATIONS = PROJECT_ROOT / "schemas" / "clickhouse"


def run_cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    # A process of its own: chDB opens one data directory per process.
    env = {**os.environ, "SPANLINE_CLICKHOUSE_DSN": dsn}
    return subprocess.run(
        [sys.executable, "-m", "spanline.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_applies_on_a_fresh_chdb_directory_and_again_without_error(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'fresh'}"
    first = run_cli("migrate", dsn=dsn)
    assert first.returncode == 0, first.stderr
    expected = len(load_migrations(MIGRATIONS))
    assert f"applied {expected} migration(s)" in first.stdout
    second = run_cli("migrate", dsn=dsn)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout


async def test_migrations_are_recorded_and_skipped(store: Store) -> None:
    recorded = await store.query("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in recorded] == [m.version for m in load_migrations(MIGRATIONS)]
    again = await store.run(lambda client: apply_migrations(client, MIGRATIONS))
    assert again == []


async def test_an_edited_migration_is_refused(store: Store, tmp_path: Path) -> None:
    edited = tmp_path / "migrations"
    edited.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        (edited / path.name).write_text(path.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await store.run(lambda client: apply_migrations(client, edited))


def test_bad_migration_file_names_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNNN_lower_snake"):
        load_migrations(tmp_path)


async def test_api_keys_are_stored_hashed_and_resolve_to_their_org(store: Store) -> None:
    created = await create_api_key(store, "acme", "ci")
    assert created.key.startswith("sl_") and len(created.key) > 40
    stored = await store.query("SELECT key_hash, org FROM api_keys")
    assert stored == [(hash_key(created.key), "acme")]
    assert created.key not in repr(await store.query("SELECT * FROM api_keys"))
    assert await org_for_key(store, created.key) == "acme"
    assert await org_for_key(store, created.key + "x") is None
    with pytest.raises(ValueError, match="organization"):
        await create_api_key(store, "  ")


def test_chdb_dsn_forms() -> None:
    assert parse_chdb_dsn("chdb:///var/lib/spanline") == parse_chdb_dsn("chdb:///var/lib/spanline?")
    assert parse_chdb_dsn("chdb:///var/lib/spanline").path == "/var/lib/spanline"
    assert parse_chdb_dsn("chdb://.spanline/chdb").path == ".spanline/chdb"
    assert parse_chdb_dsn("chdb:///d?database=t1").database == "t1"
    assert parse_chdb_dsn("chdb://memory").path == ":memory:"
