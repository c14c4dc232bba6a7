"""Applies `schemas/clickhouse/NNNN_name.sql` in order and records each in `schema_migrations`.

Safe to run twice: applied versions are skipped, and every statement is written to be re-runnable
(`IF NOT EXISTS`), so a run cut off half-way completes on the next one. A migration edited after it
was applied is refused rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from clickhouse_connect.driver.client import Client

_FILE_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LEDGER_DDL: Final = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree ORDER BY version
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """Statements are separated by a `;` at the end of a line."""
        return [part.strip() for part in re.split(r";\s*(?:\n|$)", self.sql) if _has_sql(part)]


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def load_migrations(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory at {directory}")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return migrations


def apply_migrations(client: Client, directory: Path) -> list[Migration]:
    """Apply what is not applied yet; return what this call applied."""
    migrations = load_migrations(directory)
    client.command(_LEDGER_DDL)
    applied = {
        int(version): str(checksum)
        for version, checksum in client.query(
            "SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version"
        ).result_rows
    }
    done = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                    "add a new migration instead"
                )
            continue
        for statement in migration.statements():
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        done.append(migration)
    return done
